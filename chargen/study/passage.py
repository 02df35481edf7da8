"""The text that `chargen gradflow` reads when it is given none: a short public-domain English
passage (Abraham Lincoln's Gettysburg Address, 1863), in plain ASCII so that a model trained
on English text knows every character of it."""
from __future__ import annotations

NAME = "the built-in passage (the Gettysburg Address)"

PASSAGE = (
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, "
    "conceived in Liberty, and dedicated to the proposition that all men are created equal.\n"
    "Now we are engaged in a great civil war, testing whether that nation, or any nation so "
    "conceived and so dedicated, can long endure. We are met on a great battle-field of that war. "
    "We have come to dedicate a portion of that field, as a final resting place for those who here "
    "gave their lives that that nation might live. It is altogether fitting and proper that we "
    "should do this.\n"
)

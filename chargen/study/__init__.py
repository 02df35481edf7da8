"""Study tools: comparing cells, gradient flow, hidden units and their page, plots."""

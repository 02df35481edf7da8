"""Taking a model elsewhere: a safetensors model folder, an ONNX graph of one step, and a web
page that generates text in the browser."""
from .writer import FORMATS, ExportResult, export

__all__ = ["FORMATS", "ExportResult", "export"]

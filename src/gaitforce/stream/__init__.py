"""Real-time streaming on Lab Streaming Layer: ``gaitforce stream``.

- :mod:`.layout`: the channel layout of a mocap stream (markers, force plates) and its LSL metadata;
- :mod:`.online`: :class:`OnlinePipeline`, causal per-frame features and ONNX predictions;
- :mod:`.sources`: LSL inlet lookup and :class:`ReplaySource`, which plays a file into an LSL outlet;
- :mod:`.runner`: :class:`StreamRunner`, inlet -> pipeline -> LSL outlet (+ CSV file, + dashboard feed);
- :mod:`.dashboard`: the local web page with live force curves and latency (Starlette + WebSocket).
"""

from gaitforce.stream.layout import StreamLayout
from gaitforce.stream.online import FLAGS, OnlinePipeline, OnlineSettings

__all__ = ["StreamLayout", "OnlinePipeline", "OnlineSettings", "FLAGS"]

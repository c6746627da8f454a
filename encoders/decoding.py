"""Model-independent decoding and validation of one input event, on the CPU.

The functions block for the length of a decode, so callers run them off the
event loop. Each raises InputRejected for an unusable input.
"""

from encoders.audio_decoding import Waveform, decode_audio, resample
from encoders.image_decoding import decode_image
from encoders.text_decoding import decode_text

__all__ = ["Waveform", "decode_audio", "decode_image", "decode_text", "resample"]

"""Hypothesis strategies for hostile input records and media files, shared by the fuzz tests.

Every strategy is deterministic under ``FUZZ_SETTINGS`` (derandomized, no example
database), so a run tests the same examples until the strategies or Hypothesis change.
"""

from __future__ import annotations

import base64
import io
import re
import string
from dataclasses import dataclass

import numpy as np
import orjson
import soundfile
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from encoders.modality import Modality

FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# JSON number tokens that Python's json module and orjson read differently, or not at
# all: NaN and Infinity literals, values that overflow a double, integers past 64 bits.
RAW_NUMBERS = (
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e308", "-1.7976931348623157e308", "1e-400", "-0",
    "-0.0", "18446744073709551615", "18446744073709551616", "-9223372036854775809",
    "123456789012345678901234567890", "1E+2", "0.0000001", "1e11", "100000000001",
)

# JSON string tokens written with escapes: lone and paired UTF-16 surrogates, NUL and
# other control characters, a byte order mark, a right-to-left override, escaped punctuation.
RAW_STRINGS = (
    '"\\ud800"', '"a\\udc00b"', '"\\ud83d\\ude00"', '"\\udbff\\udfff"', '"\\u0000"', '"nul\\u0000inside"',
    '"\\u001b[31mred"', '"\\ufeffbom"', '"\\u202eRTL override"', '"\\\\"', '"\\""', '"\\/"',
)

# Byte sequences that are not UTF-8: a lone continuation byte, an overlong NUL, a
# surrogate encoded as UTF-8, a truncated sequence, bytes UTF-8 never uses.
INVALID_UTF8 = (b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xff\xfe", b"\xf5\x80\x80\x80")

# Texts at the edges of Unicode: right-to-left overrides, stacked combining marks,
# emoji sequences joined with ZWJ, zero-width and non-breaking spaces, the last code
# point, a ligature whose compatibility decomposition is 18 characters long.
UNICODE_EDGE_TEXTS = (
    "\u202eevil.exe", "e" + "\u0301" * 40, "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\u200b", "a\u200bb", "\u00a0", "\ufeff", "\U0010ffff", "\ufdfa", "Z\u0324\u0354\u0367\u0311a\u0308",
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627", "\u65e5\u672c\u8a9e", "nul\x00inside",
    "tab\tand\nnewline", "\U0001f600" * 30,
)

# Characters that RediSearch query syntax, Redis glob patterns or a shell treat specially.
SPECIAL_ID_CHARACTERS = string.punctuation + " \t\n\r\x0b\x0c"

# Leading bytes of the media formats the decoders take, for random bytes that get past
# the first format check.
MEDIA_MAGIC = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"II*\x00", b"MM\x00*", b"GIF89a", b"GIF87a", b"BM", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"fLaC",
    b"OggS\x00\x02", b"FORM\x00\x00\x00\x00AIFF", b".snd", b"caff", b"ID3",
)

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "GIF", "BMP")
IMAGE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F")

# The EXIF tag that contains the orientation (EXIF 2.3, tag 0x0112).
EXIF_ORIENTATION = 0x0112

# Subtypes that store float samples as they are, NaN and infinity included.
_FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})

# Sample rates written into audio files; formats that take only some of them fall back to 8 kHz.
SAMPLE_RATES = (1, 8_000, 11_025, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000, 384_000)


def _encodes(mode: str, image_format: str) -> bool:
    try:
        Image.new(mode, (2, 2)).save(io.BytesIO(), image_format)
    except (OSError, ValueError, KeyError):
        return False
    return True


# Every (mode, format) pair that Pillow can write, found by trying.
WRITABLE_IMAGE_KINDS = tuple(
    (mode, image_format) for mode in IMAGE_MODES for image_format in IMAGE_FORMATS if _encodes(mode, image_format)
)


def _writes_audio(audio_format: str, subtype: str) -> bool:
    try:
        soundfile.write(io.BytesIO(), np.zeros(160, dtype=np.float32), 8_000, format=audio_format, subtype=subtype)
    except (soundfile.LibsndfileError, ValueError, TypeError, RuntimeError):
        return False
    return True


# Every (format, subtype) pair that libsndfile writes to a file object at 8 kHz mono.
WRITABLE_AUDIO_KINDS = tuple(
    (audio_format, subtype)
    for audio_format in sorted(soundfile.available_formats())
    for subtype in sorted(soundfile.available_subtypes(audio_format))
    if soundfile.check_format(audio_format, subtype) and _writes_audio(audio_format, subtype)
)


# Media files


@dataclass(frozen=True)
class ImageSample:
    """An encoded image and what decoding it must give."""

    data: bytes
    mode: str
    image_format: str
    size: tuple[int, int]
    orientation: int | None

    @property
    def decoded_size(self) -> tuple[int, int]:
        """Width and height after the EXIF orientation is applied."""
        width, height = self.size
        # Orientations 5 to 8 turn the picture by 90 degrees (EXIF 2.3, tag 0x0112).
        return (height, width) if self.orientation in (5, 6, 7, 8) else (width, height)


def _random_image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    length = len(Image.new(mode, size).tobytes())
    image = Image.frombytes(mode, size, rng.integers(0, 256, length, dtype=np.uint8).tobytes())
    if mode in ("P", "PA"):
        image.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
    return image


@st.composite
def images(draw: st.DrawFn) -> ImageSample:
    """Return a small image of any mode in any format that can hold it, with random pixels."""
    mode, image_format = draw(st.sampled_from(WRITABLE_IMAGE_KINDS))
    size = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    image = _random_image(mode, size, draw(st.integers(0, 2**32 - 1)))
    options: dict[str, object] = {}
    orientation = None
    if image_format == "JPEG" and draw(st.booleans()):
        orientation = draw(st.integers(1, 8))
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        options["exif"] = exif
    if mode == "P" and image_format in ("PNG", "GIF") and draw(st.booleans()):
        options["transparency"] = draw(st.integers(0, 255))
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return ImageSample(buffer.getvalue(), mode, image_format, size, orientation)


@dataclass(frozen=True)
class AudioSample:
    """An encoded audio clip and how it was written."""

    data: bytes
    audio_format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int
    has_nan: bool


def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        remainder = index << 24
        for _ in range(8):
            remainder = (remainder << 1) ^ 0x04C11DB7 if remainder & 0x80000000 else remainder << 1
        table.append(remainder & 0xFFFFFFFF)
    return tuple(table)


# The CRC-32 of Ogg pages: generator polynomial 0x04C11DB7 (RFC 3533, section 6),
# computed from 0 without reflection or a final XOR, as libogg computes it.
_OGG_CRC_TABLE = _ogg_crc_table()

# Ogg stream serial number written into every page in place of libsndfile's random one.
_OGG_SERIAL = b"\x00\x00\x00\x01"

# The descriptive text at the start of a MAT5 file, and the date and time libsndfile writes into it.
_MAT5_TEXT_BYTES = 116
_MAT5_DATE = re.compile(rb"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def _with_fixed_ogg_serial(data: bytes) -> bytes:
    """Return Ogg ``data`` with every page's serial number fixed and its CRC recomputed.

    A page is "OggS", version, flags, 8-byte granule position, 4-byte serial number
    (offset 14), 4-byte sequence number, 4-byte CRC (offset 22), a segment count and
    that many segment lengths, then the segments (RFC 3533, section 6).
    """
    pages = bytearray()
    offset = 0
    while offset + 27 <= len(data) and data[offset : offset + 4] == b"OggS":
        segments = data[offset + 26]
        body = sum(data[offset + 27 : offset + 27 + segments])
        page = bytearray(data[offset : offset + 27 + segments + body])
        page[14:18] = _OGG_SERIAL
        page[22:26] = bytes(4)
        page[22:26] = _ogg_crc(bytes(page)).to_bytes(4, "little")
        pages += page
        offset += len(page)
    return bytes(pages) + data[offset:]


def _without_write_time(data: bytes, audio_format: str) -> bytes:
    """Return ``data`` without what libsndfile 1.2.2 varies between writes, so equal draws give equal bytes.

    Float WAV and AIFF files get a PEAK chunk: "PEAK", size, version, then the time of
    writing, 4 bytes each. MAT5 files start with a 116-byte text that gives the date
    and time. Ogg pages carry a random stream serial number.
    """
    if audio_format == "OGG":
        return _with_fixed_ogg_serial(data)
    if audio_format == "MAT5":
        return _MAT5_DATE.sub(b"2000-01-01 00:00:00", data[:_MAT5_TEXT_BYTES], count=1) + data[_MAT5_TEXT_BYTES:]
    start = data.find(b"PEAK")
    if start < 0:
        return data
    time_at = start + 12
    return data[:time_at] + bytes(4) + data[time_at + 4 :]


@st.composite
def audio_clips(draw: st.DrawFn) -> AudioSample:
    """Return a short clip in any format and subtype libsndfile writes: noise, silence, clipping or NaN."""
    audio_format, subtype = draw(st.sampled_from(WRITABLE_AUDIO_KINDS))
    frames = draw(st.integers(0, 2_000))
    channels = draw(st.integers(1, 8))
    sample_rate = draw(st.sampled_from(SAMPLE_RATES))
    if audio_format == "OGG" and sample_rate > 192_000:
        # The Vorbis encoder in soundfile 0.13's libsndfile 1.2.2 crashes with SIGSEGV
        # when it writes at 384 kHz.
        sample_rate = 192_000

    kind = draw(st.sampled_from(("noise", "silence", "clipping", "nan", "inf", "tiny")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    samples = {
        "noise": lambda: rng.uniform(-1.0, 1.0, (frames, channels)),
        "silence": lambda: np.zeros((frames, channels)),
        "clipping": lambda: rng.uniform(-40.0, 40.0, (frames, channels)),
        "nan": lambda: np.where(rng.random((frames, channels)) < 0.1, np.nan, 0.1),
        "inf": lambda: np.where(rng.random((frames, channels)) < 0.1, np.inf, -0.1),
        "tiny": lambda: np.full((frames, channels), 1e-42),
    }[kind]().astype(np.float32)
    if subtype not in _FLOAT_SUBTYPES:
        # libsndfile 1.2.2 crashes with SIGSEGV when it writes NaN, infinity or values far
        # outside [-1, 1] as A-law or u-law, and LAME aborts on NaN. These tests are about
        # reading, so such values are written only where a float subtype keeps them.
        samples = np.clip(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)

    data = None
    # Formats limit rates and channels differently; the fallbacks keep the draw usable.
    for rate, count in ((sample_rate, channels), (8_000, channels), (8_000, 1)):
        buffer = io.BytesIO()
        try:
            soundfile.write(buffer, samples[:, :count], rate, format=audio_format, subtype=subtype)
        # soundfile 0.13 asserts that libsndfile wrote every frame, which some codecs do not.
        except (soundfile.LibsndfileError, ValueError, TypeError, RuntimeError, AssertionError):
            continue
        data, sample_rate, channels = _without_write_time(buffer.getvalue(), audio_format), rate, count
        break
    # Some codecs take only whole blocks of frames (VOX ADPCM takes an even count).
    assume(data is not None)
    assert data is not None

    has_nan = kind in ("nan", "inf") and frames > 0 and not np.isfinite(samples[:, :channels]).all()
    return AudioSample(data, audio_format, subtype, sample_rate, channels, frames, has_nan)


def _mutations(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Return ``valid`` files cut short, with bytes overwritten, or with garbage appended."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(valid))
        kind = draw(st.sampled_from(("truncate", "flip", "append", "zero_tail")))
        if kind == "truncate":
            return bytes(data[: draw(st.integers(0, max(0, len(data) - 1)))])
        if kind == "flip" and data:
            for _ in range(draw(st.integers(1, 8))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
            return bytes(data)
        if kind == "zero_tail" and data:
            start = draw(st.integers(0, len(data) - 1))
            return bytes(data[:start]) + bytes(len(data) - start)
        return bytes(data) + draw(st.binary(max_size=256))

    return mutate()


def random_media_bytes() -> st.SearchStrategy[bytes]:
    """Return random bytes, some behind the magic number of a media format."""
    return st.binary(max_size=2048) | st.builds(
        lambda magic, rest: magic + rest, st.sampled_from(MEDIA_MAGIC), st.binary(max_size=2048)
    )


def broken_images() -> st.SearchStrategy[bytes]:
    return _mutations(images().map(lambda sample: sample.data))


def broken_audio() -> st.SearchStrategy[bytes]:
    return _mutations(audio_clips().map(lambda sample: sample.data))


def media_bytes(modality: Modality) -> st.SearchStrategy[bytes]:
    """Return valid, broken or random files for an image or audio topic."""
    if modality is Modality.IMAGE:
        return st.one_of(images().map(lambda sample: sample.data), broken_images(), random_media_bytes())
    return st.one_of(audio_clips().map(lambda sample: sample.data), broken_audio(), random_media_bytes())


# JSON documents


def json_values() -> st.SearchStrategy[object]:
    """Return any JSON value orjson can write, nested a few levels."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=40)
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=10,
    )


def hostile_ids() -> st.SearchStrategy[str]:
    """Return ids made of characters that query languages, globs and terminals treat specially."""
    return st.one_of(
        st.text(alphabet=SPECIAL_ID_CHARACTERS, min_size=1, max_size=30),
        st.text(min_size=1, max_size=30),
        st.sampled_from(UNICODE_EDGE_TEXTS),
        st.sampled_from(("*", "?", "[a-z]", "{tag}", "@id:{x}", "a:b:c", "-1", "\\", "$vec", "id|other", " ")),
    )


def hostile_texts() -> st.SearchStrategy[str]:
    """Return texts of any Unicode, blank texts, and repeated words up to 3,000 long."""
    return st.one_of(
        st.text(max_size=200),
        st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=200),
        st.sampled_from(UNICODE_EDGE_TEXTS),
        st.builds(lambda word, count: " ".join([word] * count), st.sampled_from(("word", "\u65e5", "\U0001f600")),
                  st.integers(1, 3_000)),
        st.just(" \t\n "),
    )


def not_base64() -> st.SearchStrategy[str]:
    """Return strings that are not strict standard base64."""
    return st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            ("%%%", "abc", "ab=c", "====", "YQ", "YQ=", "YWJj\nZGVm", "YWJj ZGVm", "-_-_", "\u00e9t\u00e9")
        ),
        st.text(alphabet=string.ascii_letters + string.digits + "+/=", max_size=30),
    )


@dataclass(frozen=True)
class HostileRecord:
    """A Kafka record for one input topic, whose id can be made unique when it is rendered.

    ``key`` is the record key, or None for a record without one. ``raw_id`` is the
    JSON text of a document's id field, spliced into ``value`` when rendered, and
    None for records whose id, if any, comes from the key.
    """

    modality: Modality
    key: bytes | None
    value: bytes
    raw_id: bytes | None = None

    def render(self, prefix: str = "") -> tuple[bytes | None, bytes]:
        """Return (key, value) with ``prefix`` put in front of the document's string id, or else of the key."""
        if self.raw_id is None:
            key = None if self.key is None else prefix.encode() + self.key
            return key, self.value
        raw_id = self.raw_id
        if raw_id.startswith(b'"'):
            raw_id = b'"' + orjson.dumps(prefix)[1:-1] + raw_id[1:]
        return self.key, self.value.replace(orjson.dumps(_ID_PLACEHOLDER), raw_id, 1)

    def render_keyed(self, prefix: str) -> tuple[bytes, bytes]:
        """Return (key, value) as ``render`` does, with every record keyed by ``prefix`` and its own key.

        JSON events do not read the key, and a raw media record without one takes the
        bare prefix as its id, so every id and every key starts with ``prefix``.
        """
        key, value = self.render(prefix)
        if self.raw_id is not None or key is None:
            key = prefix.encode()
        return key, value


# Strings written in place of raw JSON fragments, then replaced by them in the encoded document.
_ID_PLACEHOLDER = "\x1fid\x1f"
_RAW_PLACEHOLDER = "\x1fraw{}\x1f"


@st.composite
def json_documents(draw: st.DrawFn, modality: Modality, usable_core: bool = False) -> HostileRecord:
    """Return a JSON event whose every field may be missing, of the wrong type or at a limit.

    With ``usable_core``, the id is a string and the payload a hostile text or a
    media file, so only the metadata and the timestamp may make the event invalid.
    """
    fragments: list[bytes] = []

    def raw(fragment: str | bytes) -> str:
        fragments.append(fragment.encode() if isinstance(fragment, str) else fragment)
        return _RAW_PLACEHOLDER.format(len(fragments) - 1)

    document: dict[str, object] = {}
    raw_id: bytes | None = None
    # Repeated choices weight the draw towards records that pass validation, so that
    # a worker under this stream also embeds and stores plenty.
    id_kind = "string" if usable_core else draw(
        st.sampled_from(("string", "string", "string", "escaped", "wrong_type", "missing"))
    )
    if id_kind == "string":
        raw_id = orjson.dumps(draw(hostile_ids()))
    elif id_kind == "escaped":
        raw_id = draw(st.sampled_from(RAW_STRINGS)).encode()
    elif id_kind == "wrong_type":
        raw_id = orjson.dumps(draw(json_values()))
    if raw_id is not None:
        document["id"] = _ID_PLACEHOLDER

    payload_field = "text" if modality is Modality.TEXT else "data"
    payload_kind = "good" if usable_core else draw(
        st.sampled_from(("good", "good", "good", "good", "escaped", "wrong_type", "missing", "bad"))
    )
    if payload_kind == "good" and modality is Modality.TEXT:
        document[payload_field] = draw(hostile_texts())
    elif payload_kind == "good":
        document[payload_field] = base64.b64encode(draw(media_bytes(modality))).decode()
    elif payload_kind == "escaped":
        document[payload_field] = raw(draw(st.sampled_from(RAW_STRINGS)))
    elif payload_kind == "wrong_type":
        document[payload_field] = draw(json_values())
    elif payload_kind == "bad":
        document[payload_field] = draw(not_base64()) if modality is not Modality.TEXT else raw(
            b'"' + draw(st.sampled_from(INVALID_UTF8)) + b'"'
        )

    metadata_kind = draw(
        st.sampled_from(
            ("none", "none", "good", "good", "numbers", "escaped", "wrong_type", "many", "long_key", "big")
        )
    )
    if metadata_kind == "good":
        document["metadata"] = draw(
            st.dictionaries(st.text(max_size=20), st.text(max_size=60) | st.integers(-(2**63), 2**64 - 1)
                            | st.floats(allow_nan=False, allow_infinity=False), max_size=6)
        )
    elif metadata_kind == "numbers":
        document["metadata"] = {"n": raw(draw(st.sampled_from(RAW_NUMBERS)))}
    elif metadata_kind == "escaped":
        document["metadata"] = {"source": raw(draw(st.sampled_from(RAW_STRINGS)))}
    elif metadata_kind == "wrong_type":
        document["metadata"] = draw(json_values())
    elif metadata_kind == "many":
        document["metadata"] = {f"k{i}": i for i in range(draw(st.integers(30, 200)))}
    elif metadata_kind == "long_key":
        document["metadata"] = {"k" * draw(st.integers(60, 300)): "v"}
    elif metadata_kind == "big":
        document["metadata"] = {f"k{i}": "v" * draw(st.integers(500, 1100)) for i in range(draw(st.integers(1, 31)))}

    ts_kind = draw(st.sampled_from(("none", "none", "number", "number", "any_number", "raw", "wrong_type")))
    if ts_kind == "number":
        document["ts"] = draw(st.floats(0, 2e12) | st.integers(0, 2**64 - 1))
    elif ts_kind == "any_number":
        document["ts"] = draw(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**64 - 1))
    elif ts_kind == "raw":
        document["ts"] = raw(draw(st.sampled_from(RAW_NUMBERS)))
    elif ts_kind == "wrong_type":
        document["ts"] = draw(json_values())

    value = orjson.dumps(document)
    for index, fragment in enumerate(fragments):
        value = value.replace(orjson.dumps(_RAW_PLACEHOLDER.format(index)), fragment, 1)
    # Leading whitespace is allowed; a UTF-8 byte order mark is not JSON.
    if not usable_core:
        value = draw(st.sampled_from((b"", b"", b"", b"", b" ", b"\n\t", b"\xef\xbb\xbf"))) + value
    return HostileRecord(modality, draw(st.none() | st.binary(max_size=16)), value, raw_id)


@st.composite
def malformed_json(draw: st.DrawFn, modality: Modality) -> HostileRecord:
    """Return JSON that is nested deeply, huge, cut short, not an object or not UTF-8."""
    depth = draw(st.sampled_from((10, 500, 1023, 1024, 1025, 5_000, 100_000)))
    value = draw(
        st.sampled_from(
            (
                b'{"id": "deep", "text": ' + b"[" * depth + b"]" * depth + b"}",
                b'{"a": ' * depth + b"1" + b"}" * depth,
                b"[" * depth,
                b'{"id": "huge", "metadata": {"n": [' + b"1," * depth + b"1]}}",
                b'{"id": "cut", "text": "abc',
                b'{"id": "dup", "id": 5, "text": "x", "text": 7}',
                b"[1, 2]",
                b'"just a string"',
                b"null",
                b"{}",
                b'{"id": "x", "text": "\xff"}',
                b'{"id": "\xed\xa0\x80", "text": "x"}',
                b'{"id": "x", "text": "a"} trailing',
                b'{"id": "x", "text": "a",}',
                b"{'id': 'x'}",
            )
        )
    )
    return HostileRecord(modality, draw(st.none() | st.binary(max_size=16)), value)


@st.composite
def raw_media_records(draw: st.DrawFn, modality: Modality) -> HostileRecord:
    """Return a raw (non-JSON) media record with a key that may be missing, not UTF-8 or special."""
    key = draw(
        st.none()
        | st.binary(max_size=16)
        | hostile_ids().map(lambda text: text.encode())
        | st.sampled_from(INVALID_UTF8).map(lambda bad: b"id" + bad)
    )
    return HostileRecord(modality, key, draw(media_bytes(modality)))


def hostile_records(modality: Modality) -> st.SearchStrategy[HostileRecord]:
    """Return any record an input topic of ``modality`` might carry."""
    documents = json_documents(modality)
    usable = json_documents(modality, usable_core=True)
    choices = [documents, documents, usable, usable, malformed_json(modality), random_media_bytes().map(
        lambda value: HostileRecord(modality, b"random", value)
    )]
    if modality is not Modality.TEXT:
        choices.append(raw_media_records(modality))
    return st.one_of(*choices)


def collect_examples(strategy: st.SearchStrategy[object], count: int) -> list[object]:
    """Return up to ``count`` examples of ``strategy``, the same ones on every run."""
    examples: list[object] = []

    @settings(FUZZ_SETTINGS, max_examples=count, phases=[Phase.generate])
    @given(strategy)
    def collect(example: object) -> None:
        examples.append(example)

    collect()
    return examples


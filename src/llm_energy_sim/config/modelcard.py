"""Model cards: the config.json fields of an LLM architecture that the cost model needs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.paths import models_dirs
from llm_energy_sim.config.yamlio import read_yaml, validation_message


class ModelCard(BaseModel):
    """Architecture of a decoder-only transformer (Llama/Qwen2/Mistral family)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    hf_id: str = Field(description="Hugging Face repository the config.json comes from")
    source: str = Field(description="where the values were read (URL of config.json)")
    architecture: str = "LlamaForCausalLM"
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    max_position_embeddings: int = Field(gt=0)
    attention_bias: bool = False
    published_params_b: float | None = Field(
        default=None, description="parameter count published by the model's authors, billions"
    )
    derived_from: str | None = Field(
        default=None,
        description="card this one copies with fewer layers (a shape for device-time-limited live checks)",
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelCard:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        return self

    @property
    def d_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.d_head

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.d_head

    def layer_params(self) -> int:
        """Weights of one decoder layer: attention projections, gated MLP, two RMSNorms."""
        h, i = self.hidden_size, self.intermediate_size
        attn = h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h
        if self.attention_bias:
            attn += self.q_dim + 2 * self.kv_dim
        return attn + 3 * h * i + 2 * h

    def embedding_params(self) -> int:
        emb = self.vocab_size * self.hidden_size
        return emb if self.tie_word_embeddings else 2 * emb

    def num_params(self) -> int:
        """Total parameters, as a published '8B' count would include them."""
        return (
            self.num_hidden_layers * self.layer_params()
            + self.embedding_params()
            + self.hidden_size
        )

    def kv_bytes_per_token(self, kv_bytes: float) -> float:
        """KV-cache bytes one token occupies across all layers."""
        return 2.0 * self.num_hidden_layers * self.kv_dim * kv_bytes


def model_card_paths() -> dict[str, Path]:
    """Every card found, by name: the first folder of models_dirs() holding it wins."""
    found: dict[str, Path] = {}
    for folder in models_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                found.setdefault(path.stem, path)
    return found


def load_model_card(name: str) -> ModelCard:
    """Find `name`.yaml in the model folders, validate it, and return the card. A name is a
    name, not a path: `../x` or `a/b` is refused."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise UserError(f"model '{name}': a model card name, not a path (see `sim models`)")
    searched = models_dirs()
    for folder in searched:
        path = folder / f"{name}.yaml"
        if path.exists():
            return load_model_card_file(path)
    available = sorted({p.stem for d in searched if d.exists() for p in d.glob("*.yaml")})
    raise UserError(
        f"no model card '{name}' (looked in {', '.join(str(d) for d in searched)}); "
        f"available: {', '.join(available) or 'none'}"
    )


def load_model_card_file(path: Path) -> ModelCard:
    data = read_yaml(path)
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        raise UserError(validation_message(path, exc)) from None

"""docs/scenario.md is the generator's output for the current Scenario schema."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm_energy_sim.config.scenario import Scenario
from tools.gen_scenario_reference import DOC, Reference, render


def test_committed_page_is_current():
    assert DOC.read_text() == render(), "run: python tools/gen_scenario_reference.py"


def test_every_model_and_field_of_the_schema_is_documented():
    schema = Scenario.model_json_schema()
    page = render()
    for name, model in schema["$defs"].items():
        assert f'<a id="{name.lower()}"></a>' in page
        for field in model.get("properties", {}):
            assert f"| `{field}` |" in page, (name, field)
    for field in schema["properties"]:
        assert f"| `{field}` |" in page


class _A(BaseModel):
    """Arm a."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["a"]
    size: int = Field(default=4, gt=0, le=64, description="how many")


class _B(BaseModel):
    kind: Literal["b"]
    mode: Literal["x", "y"] = "x"


class _Inner(BaseModel):
    choice: Annotated[_A | _B, Field(discriminator="kind")]
    tags: list[str] = []


class _Root(BaseModel):
    inner: _Inner
    rate: float | None = None


def test_walks_any_schema_generically():
    page = Reference(_Root.model_json_schema()).render()
    assert "## _Inner (`inner`)" in page
    assert "## _A (`inner.choice`; `kind: a`)" in page
    assert "## _B (`inner.choice`; `kind: b`)" in page
    assert "| `size` | integer | > 0, <= 64 | `4` | how many |" in page
    assert "| `mode` | string | `x`, `y` | `x` |  |" in page
    assert "| `choice` | one of, by `kind`: [`a`](#_a), [`b`](#_b) |  | required |  |" in page
    assert "| `rate` | number or null |  | `null` |  |" in page
    assert "| `tags` | list of string |  | `[]` |  |" in page
    # the discriminator is listed first, and a closed model says so
    a = page.split('<a id="_a"></a>')[1].split("<a id=")[0]
    assert a.index("| `kind` |") < a.index("| `size` |")
    assert "No other fields are allowed." in a

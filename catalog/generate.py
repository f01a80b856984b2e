#!/usr/bin/env python3
"""Generates catalog/models.json, Tollgate's versioned price catalog, from the litellm price facts.

Usage (from the repository root):

    python3 catalog/generate.py [--facts PATH] [--out catalog/models.json] [--check]

`--check` regenerates in memory and fails if the committed file differs (CI runs it when the
facts file is present). The output is deterministic: same facts + same constants = same bytes.

What goes in
------------
* Provider types: litellm `openai` -> `openai`, `anthropic` -> `anthropic`, `gemini` -> `google`,
  `bedrock` and `bedrock_converse` -> `bedrock`. OpenAI-compatible gets no entries (its models are
  free-form; an operator prices them with per-provider overrides or the catalog overlay).
* Modes: `chat`, `responses`, `completion` and `embedding` (what the proxy meters by tokens).
  Left out: image / audio / video generation, transcription, speech, realtime, moderation,
  rerank, guardrail, image_edit (priced per image, second or character, not per token).
* Names are the model ids clients send upstream:
  - OpenAI: bare ids; `ft:` keys are left out (real fine-tuned ids are `ft:<base>:<org>::<id>`,
    which never equal the litellm key).
  - Google: the `gemini/` prefix is stripped (the API path is `models/<id>`). When a bare key and a
    `gemini/` key name the same model, the `gemini/` key (litellm's canonical one) wins.
  - Bedrock: foundation ids `<vendor>.<model>` and inference profiles `<geo>.<vendor>.<model>` for
    the geos in GEO_PREFIXES. Left out: litellm routing keys (`bedrock/...`: per-region,
    commitment and `invoke/` variants), keys without a vendor prefix, Vertex-style `@` ids, and the
    `us-gov.` / `in.` profiles (GovCloud and a single Indian profile; add them with the overlay).
* Entries without an input price per token are left out (nothing to price tokens with).

Prices
------
Facts are USD per token. Catalog prices are integer microcents (1 USD = 100,000,000) per 1M tokens,
so the factor is 10^14. The value is converted from the JSON number's decimal text (never through
a binary float): `3e-06` -> 300,000,000 exactly. Where the text carries float noise
(`2.9999900000000002e-06` -> 299,999,000.00000002) the result is rounded half-up to a whole
microcent per 1M tokens; the generator refuses any value whose rounding would move it by 0.001
microcent or more (that would be a real sub-microcent price, not noise).

Buckets: `input_cost_per_token` -> input, `output_cost_per_token` -> output,
`cache_read_input_token_cost` -> cached input, `cache_creation_input_token_cost` -> 5-minute cache
write, `cache_creation_input_token_cost_above_1hr` -> 1-hour cache write,
`output_cost_per_reasoning_token` -> reasoning (absent: billed at the output rate). Context tiers
come from `<bucket>_above_<N>k_tokens` (N x 1000 prompt tokens; batch / flex / priority variants are
not used). A bucket the facts do not price is absent (null), never invented: the pricing engine
flags tokens in such a bucket as unpriced.

`requires_inference_profile` (the facts have no such flag): true for Bedrock bare Anthropic ids of
Claude 4.6 and later (`anthropic.claude-<family>-<major>[-<minor>]...` with (major, minor) >= (4, 6),
and versionless new-style ids such as `anthropic.claude-mythos-preview`). AWS serves those only
through an inference profile, so a call with the bare id fails upstream.
"""

from __future__ import annotations

import argparse
import decimal
import json
import re
import sys
from pathlib import Path

# ---- explicit inputs: bump these when regenerating from new facts ------------------------------
CATALOG_VERSION = "2026-11-24.1"
EFFECTIVE_DATE = "2026-11-24"
FACTS_NAME = "model-prices-litellm-1.106.2.json"
FACTS_LABEL = "litellm 1.106.2 model_prices_and_context_window (MIT)"
# -------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FACTS = ROOT.parent / "shared" / "data" / FACTS_NAME
DEFAULT_OUT = ROOT / "catalog" / "models.json"

PROVIDER_TYPES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
}
MODES = {"chat", "responses", "completion", "embedding"}
GEO_PREFIXES = ["apac", "au", "eu", "global", "jp", "us"]
GEO_LABELS = {"apac": "APAC", "au": "AU", "eu": "EU", "global": "global", "jp": "JP", "us": "US"}

MICROCENTS_PER_USD_PER_MILLION = decimal.Decimal(100_000_000) * decimal.Decimal(1_000_000)
NOISE = decimal.Decimal("0.001")

BUCKETS = [
    ("input_per_million", "input_cost_per_token"),
    ("output_per_million", "output_cost_per_token"),
    ("cached_input_per_million", "cache_read_input_token_cost"),
    ("cache_creation_5m_per_million", "cache_creation_input_token_cost"),
    ("cache_creation_1h_per_million", "cache_creation_input_token_cost_above_1hr"),
]
TIER_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)_above_(\d+)k_tokens$"
)
BEDROCK_ID = re.compile(r"^[a-z0-9-]+\.[A-Za-z0-9][A-Za-z0-9._:-]*$")
CLAUDE_NEW = re.compile(r"^anthropic\.claude-(opus|sonnet|haiku|fable|mythos)(?:-(\d+)(?:-(\d{1,2}))?)?(?=$|[-:@])")


class FactError(Exception):
    pass


def microcents_per_million(usd_per_token, where: str) -> int:
    """USD per token (a Decimal parsed from the JSON text) -> integer microcents per 1M tokens."""
    if isinstance(usd_per_token, bool) or not isinstance(usd_per_token, (int, decimal.Decimal)):
        raise FactError(f"{where}: price {usd_per_token!r} is not a number")
    exact = decimal.Decimal(usd_per_token) * MICROCENTS_PER_USD_PER_MILLION
    if exact < 0:
        raise FactError(f"{where}: negative price {usd_per_token}")
    rounded = exact.quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP)
    if abs(rounded - exact) >= NOISE:
        raise FactError(f"{where}: {usd_per_token} USD/token is {exact} microcents per 1M, not a whole microcent")
    return int(rounded)


def name_for(provider: str, key: str) -> str | None:
    """The model id a client sends for this litellm key, or None when the key is left out."""
    if provider == "openai":
        if key.startswith("ft:") or "/" in key:
            return None
        return key
    if provider == "anthropic":
        return None if "/" in key else key
    if provider == "gemini":
        bare = key[len("gemini/") :] if key.startswith("gemini/") else key
        return None if "/" in bare else bare
    # bedrock, bedrock_converse
    if "/" in key or "@" in key or not BEDROCK_ID.match(key):
        return None
    first = key.split(".", 1)[0]
    if first in ("us-gov", "in"):
        return None
    return key


def bedrock_geo(name: str) -> str | None:
    first = name.split(".", 1)[0]
    return first if first in GEO_PREFIXES else None


def requires_inference_profile(name: str) -> bool:
    m = CLAUDE_NEW.match(name)
    if not m:
        return False
    major, minor = m.group(2), m.group(3)
    if major is None:
        return True  # versionless new-style id (e.g. claude-mythos-preview): post-4.6 naming
    return (int(major), int(minor or 0)) >= (4, 6)


WORDS = {"gpt": "GPT", "claude": "Claude", "gemini": "Gemini", "gemma": "Gemma", "llama": "Llama", "tts": "TTS",
         "oss": "OSS", "ai": "AI", "vl": "VL", "glm": "GLM", "xai": "xAI", "it": "IT", "exp": "Exp"}


def label_for(provider_type: str, name: str) -> str:
    """A readable label: `claude-sonnet-4-6` -> `Claude Sonnet 4.6`, profiles note their geography."""
    geo = None
    core = name
    if provider_type == "bedrock":
        geo = bedrock_geo(name)
        if geo:
            core = name.split(".", 1)[1]
        core = core.split(".", 1)[1] if "." in core else core  # drop the vendor (`anthropic.`)
    parts = [p for p in re.split(r"[-_]", core) if p]
    out: list[str] = []
    for p in parts:
        if out and re.fullmatch(r"\d", p) and re.fullmatch(r".*\d", out[-1]) and len(out[-1]) <= 2:
            out[-1] = f"{out[-1]}.{p}"  # 4 6 -> 4.6
            continue
        low = p.lower()
        out.append(WORDS.get(low, p if any(c.isdigit() for c in p) else p.capitalize()))
    label = " ".join(out)
    if label.startswith("GPT "):
        label = "GPT-" + label[4:]
    if geo:
        label += f" ({GEO_LABELS[geo]} profile)"
    return label


def capabilities(fact: dict) -> dict:
    mode = fact.get("mode")
    conversational = mode in ("chat", "responses")
    efforts = []
    for level in ("none", "minimal", "low", "medium", "high", "xhigh", "max"):
        if fact.get(f"supports_{level}_reasoning_effort") is True:
            efforts.append(level)
    levels = fact.get("reasoning_effort_levels")
    if isinstance(levels, list):
        efforts = sorted(set(efforts) | {str(x) for x in levels}, key=lambda x: (len(x), x))
    return {
        "streaming": mode != "embedding" and fact.get("supports_native_streaming") is not False,
        "tools": fact.get("supports_function_calling") is True,
        "json_mode": fact.get("supports_response_schema") is True,
        "structured_output": fact.get("supports_native_structured_output") is True
        or fact.get("supports_response_schema") is True,
        "vision": fact.get("supports_vision") is True,
        "audio": fact.get("supports_audio_input") is True or fact.get("supports_audio_output") is True,
        "pdf_input": fact.get("supports_pdf_input") is True,
        "multi_turn": conversational,
        "system_prompts": conversational and fact.get("supports_system_messages") is not False,
        "prompt_caching": fact.get("supports_prompt_caching") is True,
        "reasoning": fact.get("supports_reasoning") is True,
        "reasoning_efforts": efforts,
        "web_search": fact.get("supports_web_search") is True,
        "embeddings": mode == "embedding",
    }


def pricing(fact: dict, where: str) -> dict:
    out: dict = {}
    for bucket, key in BUCKETS:
        if fact.get(key) is not None:
            out[bucket] = microcents_per_million(fact[key], f"{where}.{key}")
    if fact.get("output_cost_per_reasoning_token") is not None:
        out["reasoning_per_million"] = microcents_per_million(
            fact["output_cost_per_reasoning_token"], f"{where}.output_cost_per_reasoning_token"
        )
    tiers: dict[int, dict] = {}
    for key, value in fact.items():
        m = TIER_KEY.match(key)
        if not m or value is None:
            continue
        base, k = m.group(1), int(m.group(2))
        bucket = next(b for b, fk in BUCKETS if fk == base)
        tiers.setdefault(k * 1000, {})[bucket] = microcents_per_million(value, f"{where}.{key}")
    if tiers:
        order = [b for b, _ in BUCKETS]
        out["tiers"] = [
            {"above_input_tokens": t, **{b: tiers[t][b] for b in order if b in tiers[t]}} for t in sorted(tiers)
        ]
    return out


def max_tokens(fact: dict, key: str) -> int | None:
    v = fact.get(key)
    if key == "max_output_tokens" and v is None:
        v = fact.get("max_tokens")
    return int(v) if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def build(facts: dict) -> dict:
    chosen: dict[tuple[str, str], tuple[str, dict]] = {}
    for key in sorted(facts):
        fact = facts[key]
        if not isinstance(fact, dict):
            continue
        provider = fact.get("litellm_provider")
        if provider not in PROVIDER_TYPES or fact.get("mode") not in MODES:
            continue
        if fact.get("input_cost_per_token") is None:
            continue
        name = name_for(provider, key)
        if name is None:
            continue
        ptype = PROVIDER_TYPES[provider]
        slot = (ptype, name)
        if slot in chosen:
            # Google: the `gemini/` key is litellm's canonical one; otherwise keep the first (sorted).
            if provider == "gemini" and key.startswith("gemini/") and not chosen[slot][0].startswith("gemini/"):
                chosen[slot] = (key, fact)
            continue
        chosen[slot] = (key, fact)

    models = []
    for (ptype, name), (key, fact) in sorted(chosen.items()):
        entry = {
            "name": name,
            "label": label_for(ptype, name),
            "provider_type": ptype,
            "mode": fact["mode"],
            "pricing": pricing(fact, key),
            "max_input_tokens": max_tokens(fact, "max_input_tokens"),
            "max_output_tokens": max_tokens(fact, "max_output_tokens"),
            "capabilities": capabilities(fact),
            "source": f"litellm-1.106.2:{key}",
            "source_url": fact.get("source") if isinstance(fact.get("source"), str) else None,
            "effective_date": EFFECTIVE_DATE,
        }
        if isinstance(fact.get("deprecation_date"), str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", fact["deprecation_date"]):
            entry["deprecation_date"] = fact["deprecation_date"]
        if ptype == "bedrock":
            entry["requires_inference_profile"] = requires_inference_profile(name)
        models.append(entry)

    return {
        "version": CATALOG_VERSION,
        "effective_date": EFFECTIVE_DATE,
        "source": FACTS_LABEL,
        "generator": "catalog/generate.py",
        "models": models,
    }


def render(catalog: dict) -> str:
    # One model per line keeps diffs reviewable when prices change.
    head = {k: v for k, v in catalog.items() if k != "models"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "models": [')
    rows = [f"    {json.dumps(m, separators=(', ', ': '), ensure_ascii=False)}" for m in catalog["models"]]
    lines.append(",\n".join(rows))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--facts", type=Path, default=DEFAULT_FACTS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="fail if --out differs from a fresh generation")
    args = ap.parse_args()
    with args.facts.open(encoding="utf-8") as f:
        facts = json.load(f, parse_float=decimal.Decimal)
    try:
        text = render(build(facts))
    except FactError as e:
        print(f"generate.py: {e}", file=sys.stderr)
        return 1
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python3 catalog/generate.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    counts: dict[str, int] = {}
    for m in json.loads(text)["models"]:
        counts[m["provider_type"]] = counts.get(m["provider_type"], 0) + 1
    print(f"wrote {args.out}: version {CATALOG_VERSION}, {sum(counts.values())} models {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/) from the golden wire
fixtures under tests/fixtures/, in each target's input layout (control bytes, then the body;
see the module doc of each fuzz_targets/*.rs). Run it again when fixtures are added:

    python3 fuzz/seed.py

The tap target's first byte is the index of a fixture case in the order build.rs embeds them:
families as WireFamilyId::ALL (openai, anthropic, google, bedrock, azure_openai), then case file name.
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CORPUS = ROOT / "fuzz" / "corpus"
FAMILIES = ["openai", "anthropic", "google", "bedrock", "azure_openai"]
METHODS = ["POST", "GET", "post", "PUT", "DELETE"]

PROVIDERS = [
    {"name": "prod-openai", "display_name": "Prod OpenAI", "type": "openai",
     "openai_config": {"api_key_ref": "OPENAI_API_KEY"}},
    {"name": "a", "display_name": "A", "type": "anthropic",
     "anthropic_config": {"authorization_passthrough": True}, "enabled": False},
    {"name": "g", "display_name": "G", "type": "google",
     "google_config": {"api_key_ref": "GOOGLE_AI_API_KEY", "base_url": None}},
    {"name": "b", "display_name": "B", "type": "bedrock",
     "bedrock_config": {"region": "eu-central-1", "guardrail": "gr7x2k4m9p1q:3", "static_credentials":
         {"access_key_id_ref": "AWS_ACCESS_KEY_ID", "secret_access_key_ref": "AWS_SECRET_ACCESS_KEY"}}},
    {"name": "b2", "display_name": "B2", "type": "bedrock",
     "bedrock_config": {"region": "us-east-1", "assume_role":
         {"role_arn": "arn:aws:iam::123456789012:role/r", "external_id": "x-1", "session_name": "s"}}},
    {"name": "ollama", "display_name": "Ollama", "type": "openai_compatible",
     "openai_compatible_config": {"base_url": "http://localhost:11434/v1"}},
    {"name": "priced", "display_name": "Priced", "type": "openai",
     "openai_config": {"api_key_ref": "K", "base_url": "https://example.com/v1"},
     "provider_models": [{"name": "gpt-5"}, {"name": "gpt-5-mini", "pricing": {"input": 25000000}}],
     "tags": {"team": "a"}, "transcripts": {"enabled": True},
     "url": "http://x/llm/v1/providers/priced", "created_at": "2026-01-01T00:00:00Z"},
    {"name": "legacy", "display_name": "Legacy", "type": "anthropic",
     "anthropic_config": {"api_key_ref": "K"}, "models": ["claude-sonnet-4-5"]},
]


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main():
    # Hand-kept inputs (regression-*, from findings) survive a rerun; the rest is rewritten.
    if CORPUS.exists():
        for p in CORPUS.rglob("*"):
            if p.is_file() and not p.name.startswith("regression-"):
                p.unlink()
    index = 0
    for fam_i, family in enumerate(FAMILIES):
        d = FIXTURES / family
        for path in sorted(d.glob("*.case.json"), key=lambda p: p.name):
            stem = path.name[: -len(".case.json")]
            case = json.loads(path.read_text())
            response = (d / case["response"]).read_bytes()
            seed = (index * 37 + 5) % 256
            name = f"{family}-{stem}"
            events = case["response"].endswith(".events.json")
            write("tap", name, bytes([index, 1 if events else 0, seed]) + response)
            if case["injected"]:
                write("tap", name + "-unedited", bytes([index, 2, seed]) + response)
            if case["response"].endswith(".sse"):
                write("sse", name, bytes([seed, 0]) + response)
                write("sse", name + "-limit", bytes([seed, 3 + index % 3]) + response)
            elif events:
                write("eventstream", name, bytes([seed, 1, index, seed]) + response)
            else:
                write("json_scan", name, bytes([seed, index % 4, index]) + response)
            request = b""
            if case.get("request") is not None:
                request = json.dumps(case["request"], separators=(",", ":")).encode()
                write("json_scan", name + "-request", bytes([seed, 0, index]) + request)
            line = case["path"].encode() + b"\n" + (case.get("query") or "").encode() + b"\n" + request
            write("inspect", name, bytes([fam_i, METHODS.index(case["method"])]) + line)
            index += 1
    assert index < 256, "the tap target's case index is one byte"
    for i, body in enumerate(PROVIDERS):
        write("provider_spec", f"provider-{i}-{body['type']}", json.dumps(body, indent=1).encode())
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"{index} fixture cases -> {CORPUS.relative_to(ROOT)} ({total} bytes)")


if __name__ == "__main__":
    main()

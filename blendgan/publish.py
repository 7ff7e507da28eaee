"""What `blendgan publish` puts on the Hugging Face Hub: a folder with the files as safetensors and a model card.

    RUN (a `blendgan fit-style` run)  style_code.safetensors, adapter.safetensors, config.json, report.json,
                                      sample.jpg (the run's latest sample sheet)
    RUN (a training run)              its latest checkpoints/NNNNNN.pt as <kind>.safetensors, config.json
    FILE                              a style code, an adapter, or a checkpoint (.pt converted to .safetensors)

The card (README.md) starts with YAML metadata: what each file is with its sha256, the base weights'
fingerprint (`blendgan.fitting.adapter.fingerprint`: what style codes and adapters are checked against when
they are loaded, from the Hub as from a disk), how the files were made (the run's config.json), the metrics
of report.json and the last log.jsonl record, and the licence note on the base weights. A published style
code or adapter is the same file, metadata included, so loading it by `hf://` name runs the same check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import UsageError
from .fitting import adapter as adapter_mod
from .fitting.style_code import is_style_code_file
from .io.files import write_bytes_atomic
from .weights import safetensors_file
from .weights.manifest import sha256_file

LICENCE_NOTE = (
    "The files here were made with blendgan from the BlendGAN weights released by the paper's authors "
    "(Liu et al., NeurIPS 2021, https://github.com/onion-liu/BlendGAN), which are theirs: check their terms "
    "before using these files, or results made with them, beyond research."
)
INSTALL = "pip install 'blendgan[hub]'"
USE = {
    "style_code": "--style_code hf://{repo}/{name}",
    "adapter": "--adapter hf://{repo}/{name}:1.0",
    "generator": "--ckpt hf://{repo}/{name}",
    "psp_encoder": "--psp_encoder_ckpt hf://{repo}/{name}",
    "style_encoder": "--style_encoder_ckpt hf://{repo}/{name}",
}
WHAT = {
    "style_code": "a fitted style code (`blendgan fit-style`, stage 1): one style, used as a style image is",
    "adapter": "a low-rank style adapter (`blendgan fit-style`, stage 2), merged into the generator at load",
    "generator": "a BlendGAN generator checkpoint",
    "psp_encoder": "a pSp face encoder checkpoint",
    "style_encoder": "a standalone style encoder checkpoint",
}


def file_kind(path: Path) -> str:
    """style_code | adapter | generator | psp_encoder | style_encoder; UsageError for anything else."""
    from .weights import guess_kind, read_checkpoint

    if is_style_code_file(path):
        return "style_code"
    if path.suffix == ".safetensors":
        try:
            if safetensors_file.metadata(path).get("format") == adapter_mod.FORMAT:
                return "adapter"
        except Exception:  # noqa: BLE001 - not readable as safetensors: the checkpoint reader says why below
            pass
    kind = guess_kind(read_checkpoint(path, prefer_safetensors=False))
    if kind == "unknown":
        raise UsageError(f"{path}: not a style code, an adapter or a BlendGAN checkpoint; nothing to publish")
    return kind


def collect(source) -> list[tuple[Path, str]]:
    """The files to publish from a run folder or one file, as [(path, kind)]."""
    source = Path(source)
    if source.is_file():
        return [(source, file_kind(source))]
    if not source.is_dir():
        raise UsageError(f"{source}: no such run folder or file; pass a `blendgan fit-style` or training run folder")
    fitted = [source / n for n in ("style_code.safetensors", "adapter.safetensors") if (source / n).is_file()]
    if fitted:
        return [(p, file_kind(p)) for p in fitted]
    snapshots = sorted((source / "checkpoints").glob("*.pt"))
    if snapshots:
        return [(snapshots[-1], file_kind(snapshots[-1]))]
    raise UsageError(
        f"{source}: no style_code.safetensors, adapter.safetensors or checkpoints/*.pt in it; pass a run folder "
        "of `blendgan fit-style` or `blendgan train`, or one file"
    )


def _as_safetensors(path: Path, kind: str, folder: Path) -> Path:
    """The file in `folder` as safetensors: copied when it is one, converted (bit for bit) when it is a .pt."""
    if path.suffix == ".safetensors":
        dest = folder / path.name
        shutil.copyfile(path, dest)
        return dest
    from .weights import convert_to_safetensors

    name = {"generator": "blendgan", "psp_encoder": "psp_encoder", "style_encoder": "style_encoder"}[kind]
    return convert_to_safetensors(path, folder / f"{name}.safetensors")


def _describe(dest: Path, kind: str) -> dict:
    """The card's entry of one published file: name, kind, sha256, size, and its base (or own) fingerprint."""
    entry = {"name": dest.name, "kind": kind, "sha256": sha256_file(dest), "size": dest.stat().st_size}
    if kind in ("style_code", "adapter"):
        meta = safetensors_file.metadata(dest)
        for key in ("base_fingerprint", "base_checkpoint", "base_sha256", "steps", "rank", "references"):
            if key in meta:
                entry[key] = _jsonish(meta[key])
    elif kind == "generator":
        from .weights import load_generator

        generator, info = load_generator(dest)
        entry["fingerprint"] = adapter_mod.generator_fingerprint(generator)
        entry["size_px"] = info["size"]
    return entry


def _jsonish(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value


def _run_records(run: Path | None) -> tuple[dict | None, dict]:
    """(config.json, metrics from report.json and the last log.jsonl record) of a run folder."""
    if run is None:
        return None, {}
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else None
    metrics = {}
    if (run / "report.json").is_file():
        metrics.update(json.loads((run / "report.json").read_text()))
    log = run / "log.jsonl"
    if log.is_file():
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        if lines:
            metrics["last_log"] = json.loads(lines[-1])
    return config, metrics


def prepare(source, repo_id: str, folder) -> Path:
    """Write the folder to upload (the files as safetensors, README.md, and what the run has) -> its path."""
    try:
        import yaml
    except ImportError:
        raise UsageError(f"publishing writes YAML metadata with PyYAML: {INSTALL}") from None
    source, folder = Path(source), Path(folder)
    files = collect(source)
    _fresh_folder(folder)
    entries = [_describe(_as_safetensors(path, kind, folder), kind) for path, kind in files]
    run = source if source.is_dir() else None
    config, metrics = _run_records(run)
    extras = []
    for name in ("config.json", "report.json"):
        if run is not None and (run / name).is_file():
            shutil.copyfile(run / name, folder / name)
            extras.append(name)
    samples = sorted((run / "samples").glob("*.jpg")) if run is not None else []
    if samples:
        shutil.copyfile(samples[-1], folder / "sample.jpg")
        extras.append("sample.jpg")
    base = next((e["base_fingerprint"] for e in entries if "base_fingerprint" in e), None)
    base = base or next((e["fingerprint"] for e in entries if "fingerprint" in e), None)
    meta = {
        "library_name": "blendgan",
        "tags": ["blendgan", "stylegan2", "style-transfer", *sorted({e["kind"].replace("_", "-") for e in entries})],
        "license": "other",
        "blendgan": {
            "base_fingerprint": base,
            "files": entries,
            "made_with": _made_with(entries, run),
            **({"config": config} if config is not None else {}),
            **({"metrics": metrics} if metrics else {}),
            **({"sample": "sample.jpg"} if samples else {}),
        },
    }
    card = (
        "---\n"
        + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
        + "---\n\n"
        + _card_text(repo_id, entries, extras, base, metrics)
    )
    write_bytes_atomic(folder / "README.md", card.encode())
    return folder


def _fresh_folder(folder: Path) -> None:
    """An empty `folder`: a folder an earlier `publish` wrote is emptied (no stale file may be uploaded),
    any other non-empty folder is refused."""
    if folder.is_dir() and any(folder.iterdir()):
        card = folder / "README.md"
        if not (card.is_file() and "library_name: blendgan" in card.read_text(errors="replace")):
            raise UsageError(
                f"--outdir {folder} is not empty; pass a new or empty folder (everything in it is uploaded)"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


def _made_with(entries, run) -> str:
    kinds = {e["kind"] for e in entries}
    if kinds & {"style_code", "adapter"}:
        return "blendgan fit-style" + (f" (run {run.name})" if run else "")
    return "blendgan train" + (f" (run {run.name})" if run else "") if run else "a BlendGAN checkpoint"


def _card_text(repo_id, entries, extras, base, metrics) -> str:
    lines = [f"# {repo_id.split('/')[-1]}", ""]
    for e in entries:
        lines.append(f"- `{e['name']}`: {WHAT[e['kind']]} (sha256 `{e['sha256'][:16]}...`).")
    lines += ["", "## Use", "", "```bash", f"{INSTALL}"]
    flags = " ".join(USE[e["kind"]].format(repo=repo_id, name=e["name"]) for e in entries)
    if any(e["kind"] in ("style_code", "adapter") for e in entries):
        lines.append(f"blendgan stylize photo.jpg {flags}")
    else:
        lines.append(f"blendgan stylize photo.jpg --style_img artwork.jpg {flags}")
    lines += ["```", ""]
    if base:
        lines += [
            f"Made for the base generator with fingerprint `{base}`; blendgan refuses to use a style code or "
            "adapter with another generator, loaded from the Hub as from a disk.",
            "",
        ]
    if "config.json" in extras:
        lines += ["How it was made: the run's settings are in `config.json`.", ""]
    if metrics:
        lines += ["## Metrics", "", "```json", json.dumps(metrics, indent=2, sort_keys=True), "```", ""]
    if "sample.jpg" in extras:
        lines += ["![The run's last sample sheet](sample.jpg)", ""]
    lines += ["## Licence", "", LICENCE_NOTE, ""]
    return "\n".join(lines)


def upload(folder, repo_id: str, *, private: bool = False) -> str:
    """Create the repository (if needed) and upload the folder in one commit -> the repository's URL."""
    from .weights.hub import hub_settings

    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise UsageError(f"uploading needs huggingface_hub: {INSTALL}") from None
    api = HfApi(endpoint=hub_settings()["endpoint"])
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), repo_type="model", commit_message="blendgan publish"
        )
    except Exception as err:  # noqa: BLE001 - the client's HTTP errors, its transport's (httpx or httpx2, by version)
        status = getattr(getattr(err, "response", None), "status_code", None)
        reason = f"HTTP {status}" if status else f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
        raise UsageError(
            f"could not upload {folder} to {repo_id} ({reason}); log in with `hf auth login` (a token that may "
            "write), check the name, or upload the folder by hand"
        ) from None
    return str(url)

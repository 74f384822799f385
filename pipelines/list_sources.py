"""Stage `list_sources`: the inventory of `clips.sources`, every candidate with its verdict and
content hash (`lawm.sources`), in data/sources/sources.parquet.

DVC runs it on every `dvc repro` (`always_changed`): it is how DVC notices videos that were
added, removed or changed, without making the source folder a DVC dependency (DVC cannot hash a
folder that holds a broken link). Its output changes only when a video, a ground truth or a
verdict does, so an unchanged collection reruns nothing downstream. It is bookkeeping that takes
about a second, so it starts no Prefect flow and logs no MLflow run; `extract_clips` reports the
rejects. Before it lists anything, it checks the params against the sources: that
`clips.sources` exists and is a folder or a .txt list, and that every domain the params name
has a folder there. Content hashes are remembered by file size, date and inode (data/scratch/), so unchanged
files are not read again.
"""

from __future__ import annotations

from pathlib import Path

from lawm.config import LABELLED_WORLDS, REAL_DOMAIN, WORLD_DOMAINS, Params, load_params
from lawm.io import write_parquet
from lawm.sources import folder_domain, inventory, listed
from pipelines.layout import SCRATCH, SOURCES, WORLDS
from pipelines.stage import main


def check_sources(params: Params) -> list[tuple[str, str]]:
    """(field, problem) for what params.yaml names that `clips.sources` cannot give: a source that
    does not exist or is the wrong kind, and domains that no folder of it holds."""
    source, labelled = Path(params.clips.sources), None
    exts = tuple(e.lower() for e in params.clips.extensions)
    if source.resolve() == WORLDS.resolve():  # the embedded worlds: their domains are known before they exist
        domains = {*WORLD_DOMAINS, *([REAL_DOMAIN] if params.worlds.real_clips else [])}
        labelled = set(LABELLED_WORLDS)
    elif source.is_dir():
        entries = list(source.iterdir())
        domains = {p.name for p in entries if p.is_dir()}
        if any(p.name.lower().endswith(exts) for p in entries if not p.is_dir()):
            domains.add(folder_domain(source))
    elif source.is_file() and source.suffix.lower() == ".txt":
        domains = {p.parent.name or "videos" for p in listed(source)}
    elif source.is_file():
        kind = "a video file" if source.name.lower().endswith(exts) else "a file but not a .txt list"
        return [("clips.sources", f"{source} is {kind}; give the folder that holds the videos, or a .txt "
                                  "file listing them one per line")]
    else:
        return [("clips.sources", f"{source}: no such folder or list file")]
    cfg = params.latent_actions
    named = [("latent_actions.domains", cfg.domains), ("latent_actions.eval_real_domains", cfg.eval_real_domains),
             ("world_model.domains", params.world_model.domains)]
    if cfg.mixes:
        named.append(("latent_actions.mix_domains", cfg.mix_domains))
    problems = [(field, f"no folder {missing} under {source} (its domains: {', '.join(sorted(domains)) or 'none'})")
                for field, names in named if (missing := [n for n in names if n not in domains])]
    unlabelled = [d for d in params.world_model.domains if labelled is not None and d in domains and d not in labelled]
    if unlabelled:
        problems.append(("world_model.domains", f"{unlabelled} have no real actions (labelled domains: "
                                                f"{', '.join(sorted(labelled))})"))
    return problems


def list_sources(params_file: str = "params.yaml", out_file: str = str(SOURCES)) -> dict:
    cfg = load_params(params_file).clips
    sources = inventory(cfg.sources, cfg.extensions, hash_cache=SCRATCH / "source-hashes.json")
    write_parquet(out_file, sources)
    rejected = int((sources["reason"] != "").sum())
    print(f"list_sources: {len(sources)} candidates under {cfg.sources}: {len(sources) - rejected} videos to inspect, "
          f"{rejected} rejected (see extract_clips)")
    return {"candidates": len(sources), "rejected": rejected}


if __name__ == "__main__":
    main(list_sources, __doc__, checks=(check_sources,))

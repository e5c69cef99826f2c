# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``virthooks generations``: the deployed generations, newest last, the current one marked."""

from ..generations import GenerationError, all_ids, current_id, read_meta
from .util import JSON_HELP, columns, emit, emit_json, own_dir

HEADER = ["", "generation", "time", "deployer", "digest", "rules", "scripts", "entry points"]


def generation_record(own: str, gen: str, current: str) -> dict:
    """One generation as --json shows it; ``problem`` says why its meta.json could not be read."""
    problem = None
    try:
        meta = read_meta(own, gen, strict=True)
    except GenerationError as exc:
        meta, problem = {}, str(exc)
    return {"id": gen, "current": gen == current, "time": meta.get("time"), "deployer": meta.get("deployer") or None,
            "digest": meta.get("digest"), "rules": meta.get("rules"), "scripts": meta.get("scripts"),
            "drivers": list(meta.get("drivers", [])), "problem": problem}


def row(record: dict) -> list:
    def shown(value, missing="?"):
        return missing if value is None else value
    return ["*" if record["current"] else " ", record["id"], shown(record["time"]), shown(record["deployer"], "-"),
            shown(record["digest"]), shown(record["rules"]), shown(record["scripts"]),
            ",".join(record["drivers"]) or "-"]


def add_parser(sub) -> None:
    gen = sub.add_parser("generations", help="the deployed generations, newest last, the current one marked")
    gen.add_argument("--json", action="store_true", help=JSON_HELP)


def run(args, out) -> int:
    own = own_dir(args.hooks_dir)
    current = current_id(own)
    records = [generation_record(own, gen, current) for gen in all_ids(own)]
    problems = [r["problem"] for r in records if r["problem"]]
    if args.json:
        emit_json(out, {"current": current or None, "generations": records})
        return 1 if problems else 0
    if not records:
        emit(out, "no generations in %s (nothing deployed, or deployed before generations)" % own)
        return 0
    for line in columns([HEADER] + [row(r) for r in records]):
        out.write(line + "\n")
    for problem in problems:
        emit(out, "virthooks: %s" % problem)
    return 1 if problems else 0

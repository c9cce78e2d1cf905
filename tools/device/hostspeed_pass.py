"""One host-speed pass in a process of its own: calibrate/hostspeed.py's host-fit run (HF
generate, Qwen2.5-1.5B cut to 8 layers, bf16, batch 1, prompt 512, 32 new tokens, on GPU 0,
metered), appended to a hostspeed table with the tag WHEN-<unix time> (`sim replay
--hostspeed`'s tags: before-..., after-...), then its host_time_factor against every shipped
profile printed. For runs that cannot take `sim replay --hostspeed` (tensor parallelism under
torchrun: tools/device/tp4_session.sh brackets its replays with it), and for CPU tests.

    python3 tools/device/hostspeed_pass.py OUT.csv before|after [--device cpu] [--no-meter]
        [--shape CARD:LAYERS:DTYPE]

A bad argument: argparse's one-line usage error, exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _shape(text: str) -> tuple[str, int, str, tuple[int, ...]]:
    """'qwen2.5-1.5b:8:bfloat16' -> calibrate/hostspeed.py SHAPE's form (batch 1)."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': expected CARD:LAYERS:DTYPE")
    return parts[0], int(parts[1]), parts[2], (1,)


def main(argv: list[str] | None = None) -> int:
    """Measure the pass, print its factors; 0 when a successful run was appended."""
    from llm_energy_sim.calibrate.hostspeed import SHAPE, host_time_factor
    from llm_energy_sim.cli.replay import measure_host_pass
    from llm_energy_sim.config.profile import load_profile, shipped_profile_names
    from llm_energy_sim.results.readcheck import read_any_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the hostspeed table (CSV) to append to")
    ap.add_argument("when", choices=("before", "after"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-meter", action="store_true", help="timing only")
    ap.add_argument("--shape", type=_shape, default=SHAPE, help="default: the host-fit shape")
    a = ap.parse_args(argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    measure_host_pass(a.out, a.device, not a.no_meter, a.when, a.shape)
    runs = read_any_table(a.out).tail(1)
    ok = False
    for name in shipped_profile_names():
        f = host_time_factor(runs, load_profile(name)[0])
        for r in f.itertuples():
            ok = True
            print(
                f"{r.tag}: decode {1e3 * r.measured_s:.2f} ms/token, {1e3 * r.predicted_s:.2f} "
                f"predicted by {name}: host_time_factor {r.host_time_factor:.3f}"
            )
    if not ok:
        print(f"{a.out}: the pass failed (see its error column)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

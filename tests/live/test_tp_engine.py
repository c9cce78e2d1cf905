"""The tensor-parallel live engine on CPU: two torchrun ranks (gloo), a tiny random model."""

from __future__ import annotations

from pathlib import Path

DRIVER = """\
import sys, time
from pathlib import Path
from llm_energy_sim.config.modelcard import load_model_card_file
from llm_energy_sim.hf.distributed import init_distributed, rank
from llm_energy_sim.live.tp_engine import follow, TensorParallelGenerateEngine
from llm_energy_sim.live.base import RequestRecord
from llm_energy_sim.live.driver import replay, prompt_ids
card = load_model_card_file(Path(sys.argv[1]))
md = Path(sys.argv[2])
init_distributed()
if rank() != 0:
    out = f"FOLLOWER {follow(card, 'float32', md)}\\n"
else:
    eng = TensorParallelGenerateEngine(card, "float32", md)
    eng.load(); eng.start()
    recs = [RequestRecord(i, 0.05 * i, 16 + i, 4) for i in range(3)]
    eng.t0 = t0 = time.perf_counter()
    done = replay(eng, recs, lambda r: prompt_ids(0, r.request_id, r.prompt_tokens, card.vocab_size), t0)
    eng.stop()
    out = f"RANK0 {done} {[(str(r.status), r.generated_tokens) for r in recs]} {eng.info()['tensor_parallel']}\\n"
# one write per rank (atomic on a pipe): print() writes piecewise, and the ranks' pieces interleave
sys.stdout.write(out)
sys.stdout.flush()
"""


def test_two_rank_tensor_parallel_generate_on_cpu(tmp_path: Path, torchrun2):
    r = torchrun2(DRIVER, str(tmp_path / "model"), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RANK0 True [('ok', 4), ('ok', 4), ('ok', 4)] 2" in r.stdout
    assert "FOLLOWER 3" in r.stdout


WARM_DRIVER = DRIVER.replace("eng.load(); eng.start()", "eng.load(); eng.start(); eng.warm_up()")


def test_tensor_parallel_warm_up_is_mirrored_on_every_rank(tmp_path: Path, torchrun2):
    """sim replay warms a TP generate engine up (server.cold_start false): rank 0's warm-up
    generate() must run on the other ranks too, or its collectives wait for them forever."""
    assert WARM_DRIVER != DRIVER
    r = torchrun2(WARM_DRIVER, str(tmp_path / "model"), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RANK0 True [('ok', 4), ('ok', 4), ('ok', 4)] 2" in r.stdout
    assert "FOLLOWER 4" in r.stdout  # the three requests and the warm-up

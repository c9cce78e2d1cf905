"""`python -m llm_energy_sim.cli ...` (e.g. under torchrun) is `sim ...`."""

from llm_energy_sim.cli.main import main

main()

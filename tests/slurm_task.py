"""One SLURM task's view (test_ddp.py runs it as `python -m slurm_task FOLDER` under srun's
variables): what Lightning's SLURMEnvironment reports, and whether this task writes job.json."""

import json
import sys

from lightning.pytorch.plugins.environments import SLURMEnvironment

from logitlab.run.sweep import job_record
from logitlab.train import shows_console

slurm = SLURMEnvironment()
with job_record(sys.argv[1], keep_going=False):
    pass
seen = {"detected": SLURMEnvironment.detect(), "rank": slurm.global_rank()}
seen.update(world=slurm.world_size(), console=shows_console())
print(json.dumps(seen))

"""Distillery's Python client: submit prompt sets, follow jobs, export datasets.

    import distillery
    c = distillery.Client("127.0.0.1:7070")
    job = c.submit(rows, teacher="sim", model="sim-reasoner", samples=2,
                   template="Solve: {{ question }}", system="You are careful.")
    for update in c.watch(job):
        print(update.percent, update.cost_usd)
    for rec in c.export(job, format="openai"):
        ...
    c.export_to(job, "out/train.jsonl", format="openai",
                split={"train": 0.95, "test": 0.05}, card=True)

The coordinator does the work: it validates prompts, formats the export and
writes the dataset card, exactly as for the `distillery` CLI.
"""

from distillery.client import (
    Client,
    DistilleryError,
    ExportResult,
    Job,
    RowError,
)

__all__ = ["Client", "DistilleryError", "ExportResult", "Job", "RowError"]
__version__ = "0.1.0"

"""``simulator evaluate``: model-free metrics and LLM-judge rubrics for every session and series
of a run, with the judge's evidence checked and its agreement with itself measured.

    evaluation = prepare(Path("runs/RUN_ID"), rubric_names=[], rubrics_dir=None,
                         config_file=None, flags={"judge_model": "gpt-4o-mini"}, repeats=3)
    outcome = asyncio.run(evaluation.execute())
    outcome.report["summary"]["items"]["ctrs"]["agenda"]   # mean, ci95, agreement, ...
"""

from simulator.evaluate.evaluation import EvalEvent, Evaluation, Outcome, prepare, prepare_resume
from simulator.evaluate.rubrics import Rubric, load_rubric, load_rubrics
from simulator.evaluate.table import report_view

__all__ = [
    "EvalEvent",
    "Evaluation",
    "Outcome",
    "Rubric",
    "load_rubric",
    "load_rubrics",
    "prepare",
    "prepare_resume",
    "report_view",
]

"""``sftlens audit``: did a fine-tune teach reasoning, or only answers?

The pipeline has three stages, each resumable from the files it leaves in ``DIR``:

1. **generate** — the base and the tuned model answer every example (and every variant set). Each
   generation is appended to ``DIR/samples.jsonl`` as soon as its batch is done, with a *cache key*
   built from the model's identity (hash of config and weights, plus path/id, revision and adapter),
   the exact prompt, the generation parameters and the seed. A rerun skips every sample whose key is
   already there, so one model's cache never serves another and an interrupted run resumes. With
   ``--samples N`` an example has N generations (the index enters the key from the second on).
2. **score** — per-sample metric rows (strict/flexible accuracy, step validity, Knowledge Index,
   per-step information gain scored by the *base* model for both models, so they share one scale)
   go to ``DIR/metrics.jsonl``, keyed by sample key + scorer identity + verifier.
3. **aggregate** — an example's samples averaged first (accuracy becomes its pass@1; pass@k and
   maj@k besides), then bootstrap intervals per model, paired differences (tuned − base) with intervals,
   McNemar's test on accuracy, variant gaps, the faithfulness battery when available, and a one-line
   verdict on the *accuracy trap*. ``DIR/results.json`` holds every number; ``DIR/report.html`` and
   ``DIR/report.md`` are rendered from it (``sftlens report DIR`` re-renders them without a model).

``audit_predictions`` scores generations made elsewhere (a JSONL of ``question``, ``completion``,
``reference``, optional ``model`` and ``id``; or an lm-evaluation-harness ``--log_samples`` file or
an inspect_ai eval log, see ``_logs``) with text metrics only.
"""

from ..core.record import RecordError
from ._cache import Store, content_hash, row_key, sample_key
from ._compare import (FAITH_METRICS, METRICS, TEXT_METRICS, TRAP_RULE, compare_models, comparison_verdict,
                       summarize_model, text_only_verdict, trap_verdict, variant_gap)
from ._faithfulness import faithfulness_module
from ._io import RESULTS_FILE, ROWS_FILE, SAMPLES_FILE, SCHEMA_VERSION, load_saved, write_report
from ._models import ModelHandle, load_models
from ._predictions import read_prediction_files, read_predictions
from ._results import ModelEvidence, build_results
from ._run import audit_predictions, run_audit
from ._spec import AuditSpec, load_data, pick_verifier
from ._stages import GenSettings, generate_cached, score_cached

__all__ = ["FAITH_METRICS", "METRICS", "RESULTS_FILE", "ROWS_FILE", "SAMPLES_FILE", "SCHEMA_VERSION", "TEXT_METRICS",
           "TRAP_RULE", "AuditSpec", "GenSettings", "ModelEvidence", "ModelHandle", "RecordError", "Store",
           "audit_predictions", "build_results", "compare_models", "content_hash", "faithfulness_module",
           "generate_cached", "load_data", "load_models", "load_saved", "pick_verifier", "read_prediction_files", "read_predictions",
           "row_key", "run_audit", "sample_key", "score_cached", "summarize_model", "text_only_verdict",
           "comparison_verdict", "trap_verdict", "variant_gap", "write_report"]

"""lmms-eval's view of the radio tasks: the functions the YAMLs name (``!function utils.…``).

Everything is in ``benchmarks/lmms/radio.py``; this file only hands it to lmms-eval, plus
``RadioTask``, which reads the documents with ``benchmarks.data`` instead of ``datasets.load_dataset``
(as lmms-eval's own VSTAT task reads its local JSON).
"""

from datasets import Dataset, DatasetDict
from lmms_eval.api.task import ConfigurableTask

from benchmarks.lmms.radio import (aggregate_accuracy, aggregate_macro_f1, aggregate_unparsed,  # noqa: F401
                                   data_spec, doc_to_target, doc_to_text, doc_to_visual, documents,
                                   process_results)


class RadioTask(ConfigurableTask):
    """A radio benchmark over local files: ``dataset_path`` is the benchmark code (B1 … B7)."""

    def __init__(self, *args, config=None, **kwargs):
        if config is not None:
            config = dict(config)
            config.pop("class", None)
        super().__init__(*args, config=config, **kwargs)

    def download(self, dataset_kwargs=None) -> None:
        code = str(self.config.dataset_path).upper()
        spec, root = data_spec(code, dataset_kwargs)
        split = self.config.test_split
        self.dataset = DatasetDict({split: Dataset.from_list(documents(code, spec, root))})
        self.dataset_no_image = self.dataset

"""Find, load and run medkit bundles (a thin layer over ``monai.bundle``).

This module finds a bundle, reads its metadata and creates its workflows; beside it ``templates.py`` renders the
workflow configs, ``properties.py`` declares the ids the commands need, ``gate.py`` builds the two-stage pipeline,
``verify.py`` checks a bundle offline and ``archive.py`` writes and unpacks bundle zips.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from medkit.errors import MedkitError, install_excepthook

__all__ = [
    "config_bundle_root",
    "train_stages",
    "default_dataset_dir",
    "bundle_datalist",
    "input_placeholder",
    "two_stage_inferer",
    "classifier_gate",
    "meta_component",
    "resolve_bundle",
    "load_metadata",
    "channel_names",
    "create_workflow",
    "checked_overrides",
    "default_device",
    "SCHEMA_PATH",
    "verify_bundle",
    "export_bundle",
    "MAX_MODEL_BYTES",
]

logger = logging.getLogger(__name__)

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_PATH = os.path.join(PACKAGE_DIR, "schemas", "meta_schema.json")
WORKFLOW_FILES = {"train": "train.json", "evaluate": "evaluate.json", "infer": "inference.json"}
WORKFLOW_TYPES = {"train": "train", "evaluate": "infer", "infer": "infer"}


def _root_from_configs_dir(path: str) -> str:
    path = os.path.abspath(path)
    return os.path.dirname(path) if os.path.basename(path) == "configs" else path


def _callers() -> Iterator[Any]:
    """The ``self`` of each frame on the call stack, innermost first (the ConfigParser or ConfigWorkflow whose
    config is being resolved is among them)."""
    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if owner is not None:
            yield owner
        frame = frame.f_back


def config_bundle_root() -> str:
    """The folder of the bundle whose config is being parsed, wherever the process was started.

    Used as ``"bundle_root": "$medkit.bundle.config_bundle_root()"`` so that the single-file command
    ``python -m monai.bundle run --config_file <bundle>/configs/train.json`` works from any working
    directory and from a copied bundle. It finds, in order: the ``ConfigWorkflow`` that is parsing the
    config (its ``config_root_path``), a ``--config_file`` argument on the command line, the working
    directory. Pass ``--bundle_root`` to override.

    It also makes a ``MedkitError`` that ends the run one line, not a traceback (``medkit.errors.install_excepthook``).
    """
    install_excepthook()
    for owner in _callers():
        # read the instance dict: ConfigParser and ConfigWorkflow resolve unknown attributes as config ids
        root = vars(owner).get("config_root_path") if hasattr(owner, "__dict__") else None
        if root is not None:
            return _root_from_configs_dir(os.fspath(root))
    argv = sys.argv
    for i, arg in enumerate(argv):
        value = None
        if arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        if value:
            first = value.strip("[]'\" ").split(",")[0].strip("'\" ")
            return _root_from_configs_dir(os.path.dirname(first))
    return os.getcwd()


def resolve_bundle(bundle: str | os.PathLike) -> str:
    """Absolute path of a bundle given as a folder, a zip (unpacked once into ``~/.cache/medkit``), or a name
    under ``./bundles`` or medkit's checkout.

    Raises:
        MedkitError: no folder with ``configs/metadata.json`` is found.
    """
    bundle = os.fspath(bundle)
    if bundle.lower().endswith(".zip") and os.path.isfile(bundle):
        from medkit.bundle.archive import unpack_zip

        return unpack_zip(bundle)
    candidates = [bundle, os.path.join("bundles", bundle)]
    candidates.append(os.path.join(os.path.dirname(PACKAGE_DIR), "bundles", bundle))
    for path in candidates:
        if os.path.isfile(os.path.join(path, "configs", "metadata.json")):
            return os.path.abspath(path)
    raise MedkitError(f"{bundle}: not a bundle (no configs/metadata.json there or under ./bundles)")


def load_metadata(bundle_dir: str) -> dict:
    """The bundle's ``configs/metadata.json`` as a dict.

    Raises:
        InputFileError: the file is missing or is not a JSON object.
    """
    from medkit.errors import InputFileError

    path = os.path.join(os.fspath(bundle_dir), "configs", "metadata.json")
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise InputFileError(path, "missing: not a bundle") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise InputFileError(path, "not a JSON object")
    return meta


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def train_stages(bundle_dir: str) -> list[list[str]]:
    """The config files of each of the bundle's training stages, in order (metadata ``medkit.train_stages``).

    A bundle trained in one stage has ``[["train.json"]]`` (the default). A later stage lists ``train.json`` and its
    overlay (``["train.json", "finetune.json"]``); the overlay starts from the model the stage before wrote.

    Raises:
        MedkitError: a listed config file is missing.
    """
    stages = load_metadata(bundle_dir).get("medkit", {}).get("train_stages") or [["train.json"]]
    out = [[stages_file] if isinstance(stages_file, str) else list(stages_file) for stages_file in stages]
    for stage in out:
        for name in stage:
            if not os.path.isfile(os.path.join(bundle_dir, "configs", name)):
                raise MedkitError(
                    f"{os.path.join(bundle_dir, 'configs', name)}: listed in medkit.train_stages, missing"
                )
    return out


def create_workflow(
    bundle_dir: str,
    workflow: str,
    overrides: Mapping[str, Any] | None = None,
    config_files: list[str] | None = None,
    ignore_unknown: bool = False,
):
    """A ``ConfigWorkflow`` for one of the bundle's workflows (``train``, ``evaluate``, ``infer``), initialised.

    Args:
        bundle_dir: the bundle folder.
        workflow: which workflow; it names the config file unless ``config_files`` is given.
        overrides: config ids to values, as ``--id value`` would on the command line.
        config_files: config files of the bundle's ``configs/`` folder merged in order (a training stage:
            ``["train.json", "finetune.json"]``); default: the workflow's own file.
        ignore_unknown: leave out overrides the configs do not define (settings meant for another workflow)
            instead of refusing them.

    Raises:
        MedkitError: unknown workflow, missing config file, an override of an id no config defines (a typo would
            otherwise run with the default) or outside its range (``medkit.bundle.properties.RANGES``).
    """
    from monai.bundle import ConfigWorkflow

    if workflow not in WORKFLOW_FILES:
        raise MedkitError(f"unknown workflow '{workflow}', expected one of {sorted(WORKFLOW_FILES)}")
    names = config_files or [WORKFLOW_FILES[workflow]]
    paths = [os.path.join(bundle_dir, "configs", name) for name in names]
    overrides = checked_overrides(bundle_dir, names, overrides, ignore_unknown=ignore_unknown)
    announcer = logging.getLogger("monai.bundle.workflows")  # its "Setting logging properties" line goes to stdout
    level = announcer.level
    announcer.setLevel(max(level, logging.WARNING))
    try:
        wf = ConfigWorkflow(
            config_file=paths if len(paths) > 1 else paths[0],
            meta_file=os.path.join(bundle_dir, "configs", "metadata.json"),
            workflow_type=WORKFLOW_TYPES[workflow],
            **{"bundle_root": bundle_dir, **overrides},
        )
    finally:
        announcer.setLevel(level)
    wf.initialize()
    return wf


def checked_overrides(
    bundle_dir: str, config_files: list[str], overrides: Mapping[str, Any] | None, ignore_unknown: bool = False
) -> dict:
    """``overrides`` checked against the bundle's ``config_files`` (names in its ``configs/`` folder) before any
    work: an id that none of them defines and a value outside its range (``medkit.bundle.properties``) are refused.

    Args:
        ignore_unknown: leave out the ids the configs do not define instead of refusing them.

    Returns:
        the overrides to apply.

    Raises:
        MedkitError: a missing config file, an unknown id (unless ``ignore_unknown``), a value out of range.
    """
    from medkit.bundle.properties import check_ranges, describe_unknown, unknown_ids

    configs = []
    for name in config_files:
        path = os.path.join(bundle_dir, "configs", name)
        if not os.path.isfile(path):
            raise MedkitError(f"{path}: the bundle has no such config")
        with open(path) as f:
            configs.append(json.load(f))
    overrides = dict(overrides or {})
    unknown = unknown_ids(configs, load_metadata(bundle_dir), [k for k in overrides if k != "bundle_root"])
    if unknown and not ignore_unknown:
        raise MedkitError(describe_unknown(unknown[0], configs, f"{bundle_dir} ({' + '.join(config_files)})"))
    overrides = {k: v for k, v in overrides.items() if k not in unknown}
    check_ranges(overrides)
    return overrides


def default_dataset_dir(meta: Mapping[str, Any]) -> str:
    """``$MEDKIT_DATA/<medkit.data_folder>`` when ``MEDKIT_DATA`` is set, else ``""`` (the configs' default)."""
    root = os.environ.get("MEDKIT_DATA")
    return os.path.join(root, meta.get("medkit", {}).get("data_folder", "")) if root else ""


def bundle_datalist(
    meta: Mapping[str, Any],
    dataset_dir: str,
    datalist_file: str = "",
    all_patients: bool = False,
    class_names: list[str] | None = None,
) -> dict:
    """The datalist a bundle's workflows read: ``datalist_file`` when given, else the bundle's data source
    (metadata ``medkit.data``) scanned under ``dataset_dir`` and split by patient.

    Args:
        meta: the bundle's metadata.
        dataset_dir: the data set in its published layout.
        datalist_file: a datalist JSON (``medkit prepare``, a cross-validation fold), used as it is.
        all_patients: train on every patient (no validation or test patients); the validation side is then the
            training set itself, so the end-of-training check is a training figure.
        class_names: the classifier's label map, for sources that derive the label from it.
    """
    from medkit.data import make_datalist

    settings = dict(meta.get("medkit", {}).get("data", {}))
    if all_patients and not datalist_file:
        settings.update(val_fraction=0.0, test_fraction=0.0)
    extra = {"class_names": class_names} if class_names is not None else {}
    extra["accepts"] = meta.get("medkit", {}).get("accepts")  # left out by name, not refused mid-run
    datalist = make_datalist(dataset_dir=dataset_dir, datalist_file=datalist_file, **extra, **settings)
    if all_patients and not datalist_file:
        datalist["validation"] = list(datalist["training"])
    return datalist


def input_placeholder(meta: Mapping[str, Any]) -> dict:
    """The input a failed item is replaced with in inference batches: zeros of the network's declared input shape."""
    import torch

    image = meta["network_data_format"]["inputs"]["image"]
    return {"image": torch.zeros([int(image["num_channels"])] + [int(s) for s in image["spatial_shape"]])}


def channel_names(meta: Mapping[str, Any]) -> list[str]:
    """Class names in output-channel order from a parsed metadata dict (``@_meta_`` in a config)."""
    try:
        channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    except (KeyError, TypeError):
        raise MedkitError("metadata.json lacks network_data_format.outputs.pred.channel_def (the label map)") from None
    return [channel_def[str(i)] for i in range(len(channel_def))]


def task_type(bundle_dir: str) -> str:
    """The bundle's ``medkit.task_type`` from its metadata (``"classification"``, ``"segmentation"``), or ``""``."""
    return load_metadata(bundle_dir).get("medkit", {}).get("task_type", "")


def _parsing_meta(own: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``_meta_`` section of the ``ConfigParser`` whose config is being resolved (with any ``--_meta_#...``
    override applied), found on the call stack as ``config_bundle_root`` finds its workflow, when it is the
    metadata of the bundle ``own`` describes (same name and version: a segmenter's config that loads its
    classifier gate reads the classifier's own file); ``None`` when no parser there holds it (MONAI Label parses
    inference.json without metadata.json)."""
    from monai.bundle import ConfigParser

    for owner in _callers():
        if isinstance(owner, ConfigParser):
            meta = vars(owner).get("config", {}).get("_meta_")  # the instance dict: no config-id lookup
            if isinstance(meta, Mapping) and "medkit" in meta:
                same = all(meta.get(k) == own.get(k) for k in ("name", "version"))
                return meta if same else None
    return None


def meta_component(bundle_root: str, key: str, **overrides: Any) -> Any:
    """Instantiate ``medkit.<key>`` of the bundle's metadata (network, preprocessing, augmentation...): the one way
    every workflow config reaches the definitions metadata.json holds once.

    Inside a config of this bundle parsed with its metadata (``monai.bundle run``, ``medkit``) the definition is
    that parser's ``_meta_``, so ``--_meta_#medkit#preprocessing#equalize False`` and the like apply; where the metadata
    was not read (MONAI Label parses inference.json alone), it is read from ``<bundle_root>/configs/metadata.json``.
    ``overrides`` set arguments of the definition first (``meta_component(root, "preprocessing", seg_key="seg")``:
    the training variant of the shared preprocessing).

    Raises:
        MedkitError: the metadata has no ``medkit.<key>``.
    """
    import copy

    from monai.bundle import ConfigParser

    own = load_metadata(os.fspath(bundle_root))
    meta = _parsing_meta(own)
    parser = ConfigParser()
    parser["_meta_"] = copy.deepcopy(dict(own if meta is None else meta))
    if key not in parser.get("_meta_", {}).get("medkit", {}):
        raise MedkitError(f"{bundle_root}: metadata.json has no medkit.{key}")
    for name, value in overrides.items():
        parser[f"_meta_#medkit#{key}#{name}"] = value
    return parser.get_parsed_content(f"_meta_#medkit#{key}")


from medkit.bundle import fast  # noqa: E402, F401  (config expressions: medkit.bundle.fast.use_bf16, ...)
from medkit.bundle.archive import export_bundle  # noqa: E402  (the submodules import this module's names lazily)
from medkit.bundle.gate import classifier_gate, two_stage_inferer  # noqa: E402
from medkit.bundle.verify import MAX_MODEL_BYTES, verify_bundle  # noqa: E402

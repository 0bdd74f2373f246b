"""The ``gpusom`` command line: train a map, project data on it, draw its pictures, run the demo.

``gpusom train DATA --size ROWSxCOLS [--torus] [--hexagonal] [--iterations N] [--batch]
[--metric M] [--nan-policy P] [--normalize] [--backend B] [--seed S] --out MODEL``, ``gpusom
project MODEL DATA --out OUT.csv``, ``gpusom plot MODEL --out DIR [--data DATA [--labels
COLUMN]]``, ``gpusom demo --out DIR`` and ``gpusom --version``, also as ``python -m gpusom``.
DATA is a ``.csv`` file (a first row that is not all numbers is a header of column names) or a
2-D ``.npy`` array. A model trained with ``--nan-policy ignore`` takes empty cells (and ``nan``)
as missing values, in training and when it projects or plots data. Every mistake in the input
(unreadable or malformed files, non-numeric columns, missing values otherwise, bad sizes) ends
with one line on stderr and exit status 2, never a traceback. A command's result is the files it
writes; its messages (timings, progress, what was loaded and written, the demo's report) go to
stderr. Only ``--help`` and ``--version`` print on stdout, so ``gpusom project MODEL DATA --out
/dev/stdout`` pipes nothing but the CSV.
"""

import argparse
import contextlib
import csv
import math
import os
import re
import sys

import numpy as np

from . import __version__
from ._backend import BACKENDS, BackendUnavailableError
from ._math import METRICS, NAN_POLICIES
from .io import check_writable
from .schedules import FINISHES

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's convention for a process stopped by SIGINT
#: Appended to the error for a missing value in data read without ``allow_missing``.
MISSING_HINT = "; train with --nan-policy ignore to allow missing values"


class UsageError(Exception):
    """A command-line mistake, reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse would print the usage block and exit; main() reports one line instead.
        raise UsageError(f"{self.prog}: error: {message}")


def _size(text):
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS of positive integers, got {text!r}")
    return int(match[1]), int(match[2])


def _positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _seed(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _column_index(column, names, width, path):
    """The index of ``column``, a header name or a 0-based column number."""
    if names is not None and column in names:
        return names.index(column)
    if column.isdigit() and int(column) < width:
        return int(column)
    known = f"its columns are {', '.join(names)}" if names else "give a 0-based column number"
    raise ValueError(f"{path} has no column {column!r} ({known})")


def read_table(path, label_column=None, allow_missing=False):
    """``(values, names, labels)`` of a ``.csv`` or ``.npy`` file of samples in rows.

    ``values`` is a float64 ``(n_samples, n_features)`` array of finite numbers, or NaN for a
    missing value (an empty CSV cell, ``nan``) with ``allow_missing``; ``names`` the header's
    column names (None without a header); ``labels`` the values of ``label_column`` (excluded
    from ``values``) as a list, or None.
    """
    path = os.fspath(path)
    if path.lower().endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path} is not a readable .npy array: {exc}") from None
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise ValueError(f"{path} holds a {array.ndim}-D {array.dtype} array, not numeric rows")
        if array.shape[0] == 0:
            raise ValueError(f"{path} holds no data")
        labels = None
        if label_column is not None:
            index = _column_index(label_column, None, array.shape[1], path)
            labels = array[:, index].tolist()
            array = np.delete(array, index, axis=1)
        bad = np.argwhere(np.isinf(array) if allow_missing else ~np.isfinite(array))
        if bad.size:
            row, col = bad[0]
            raise ValueError(f"{path}: row {row}, column {col} is {array[row, col]}")
        return array.astype(np.float64), None, labels
    if not path.lower().endswith(".csv"):
        raise ValueError(f"{path}: expected a .csv or .npy file")
    # utf-8-sig: a leading byte-order mark is not part of the first column's name
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream)
        try:
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a readable CSV file: {exc}") from None
    if not rows:
        raise ValueError(f"{path} holds no data")
    names = None
    first = [cell.strip() for cell in rows[0][1]]
    if any(cell and not _is_number(cell) for cell in first):
        names, rows = first, rows[1:]
        if not rows:
            raise ValueError(f"{path} has a header but no data rows")
    width = len(rows[0][1]) if names is None else len(names)
    index = None if label_column is None else _column_index(label_column, names, width, path)
    columns = [j for j in range(width) if j != index]
    values = np.empty((len(rows), len(columns)))
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}, line {line}: {len(row)} fields, expected {width}")
        for k, j in enumerate(columns):
            cell = row[j].strip()
            name = repr(names[j]) if names else str(j)
            try:
                values[i, k] = float(cell) if cell or not allow_missing else math.nan
            except ValueError:
                what = f"is not numeric ({cell!r})"
                if not cell:
                    what = f"is empty (a missing value){MISSING_HINT}"
                raise ValueError(f"{path}, line {line}: column {name} {what}") from None
            if math.isinf(values[i, k]) or (math.isnan(values[i, k]) and not allow_missing):
                hint = MISSING_HINT if math.isnan(values[i, k]) else ""
                raise ValueError(f"{path}, line {line}: column {name} is {cell}{hint}")
    labels = None if index is None else [row[index].strip() for _, row in rows]
    features = None if names is None else [names[j] for j in columns]
    return values, features, labels


def _train(args):
    from .som import SOM

    check_writable(args.out)  # found out before training, not after
    values, names, _ = read_table(args.data, allow_missing=args.nan_policy == "ignore")
    som = SOM(
        args.size,
        args.torus,
        topology="hexagonal" if args.hexagonal else "rectangular",
        algorithm="batch" if args.batch else "online",
        finish=args.finish,
        metric=args.metric,
        nan_policy=args.nan_policy,
        num_iterations=args.iterations,
        normalize=args.normalize,
        backend=args.backend,
        seed=args.seed,
    )
    try:
        som.fit(values)
    except KeyboardInterrupt:
        if not hasattr(som, "steps_done_"):  # stopped before training began: nothing to keep
            raise
        _save(som, names, args.out)
        total = som.num_iterations_
        raise KeyboardInterrupt(
            f"interrupted at step {som.steps_done_:,} of {total:,}; the model so far is saved in "
            f"{args.out} (finish it in Python: SOM.load(path).train(data, {total}, "
            f"normalize={args.normalize}, resume=True))"
        ) from None
    _save(som, names, args.out)


def _save(som, names, path):
    if names is not None:
        # A CSV header names the features as a DataFrame's columns would.
        som.feature_names_in_ = np.asarray(names, dtype=object)
    som.save(path)


def _load(path):
    from .som import SOM

    som = SOM.load(path)
    som.verbose = False
    return som


def _model_data(som, path, label_column=None):
    """``(values, labels)`` of the data file ``path`` for the model ``som``.

    Its columns (``label_column`` aside) must be the model's features: as many, and with a
    header, the same names in the same order, since columns are taken by position. Data without
    a header is taken as it is.
    """
    values, names, labels = read_table(path, label_column, som.nan_policy == "ignore")
    if values.shape[1] != som.n_features_in_:
        besides = "" if label_column is None else f" besides the labels column {label_column}"
        raise ValueError(
            f"{path} has {values.shape[1]} feature columns{besides}; the model has "
            f"{som.n_features_in_} features"
        )
    if names is not None:
        som._check_feature_names(np.asarray(names, dtype=object))
    return values, labels


def _project(args):
    som = _load(args.model)
    values, _ = _model_data(som, args.data)
    cells = som.transform(values)
    with open(args.out, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["row", "col"])
        writer.writerows(cells.tolist())
    print(f"BMU row and column of {len(cells)} samples written to {args.out}")


def _plot(args):
    from . import plot
    from .analysis import u_matrix

    if args.labels is not None and args.data is None:
        raise UsageError("gpusom plot: error: --labels needs --data")
    som = _load(args.model)
    lattice = som.lattice_
    topology = som.settings_["topology"]
    search = {"metric": som.metric, "nan_policy": som.nan_policy}  # the hit maps use the map's
    data = labels = None
    if args.data is not None:
        values, labels = _model_data(som, args.data, args.labels)
        data = som.scale(values)  # the pictures compare data with the lattice in its own space
    os.makedirs(args.out, exist_ok=True)
    pictures = {
        "lattice.png": lambda path: plot.plot_lattice(lattice, topology=topology, save_to=path),
        "u_matrix.png": lambda path: plot.plot_u_matrix(
            u_matrix(
                lattice,
                som.settings_["is_torus"],
                topology=topology,
                metric=som.settings_["metric"],
            ),
            fig_size=(7, 5),
            topology=topology,
            save_to=path,
        ),
        "component_planes.png": lambda path: plot.plot_component_planes(
            lattice, getattr(som, "feature_names_in_", None), topology=topology, save_to=path
        ),
    }
    if data is not None:
        pictures["hit_map.png"] = lambda path: plot.plot_hit_map(
            data, lattice, topology=topology, save_to=path, **search
        )
    if labels is not None:
        pictures["labels_map.png"] = lambda path: plot.plot_labels_map(
            data, labels, lattice, topology=topology, save_to=path, **search
        )
    for name, draw in pictures.items():
        draw(os.path.join(args.out, name))
    print(f"{', '.join(pictures)} written to {args.out}")


def _demo(args):
    from .demo import run

    run(args.out, seed=args.seed)


def build_parser():
    """The ``gpusom`` argument parser."""
    parser = _Parser(prog="gpusom", description="Self-organizing maps on the CPU or a GPU.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Not required=True: argparse checks required arguments before it reports unknown options,
    # so "gpusom --bogus" would blame the missing command; main() checks for it after parsing.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a map on DATA and save the model")
    train.add_argument("data", metavar="DATA", help=".csv or .npy file, one sample per row")
    train.add_argument("--size", type=_size, required=True, metavar="ROWSxCOLS")
    train.add_argument("--torus", action="store_true", help="wrap the lattice's edges")
    train.add_argument("--hexagonal", action="store_true", help="a hexagonal lattice")
    train.add_argument(
        "--iterations",
        type=_positive_int,
        metavar="N",
        help=(
            "online steps (default: max(10 n, min(500 cells, 75 n)) for n samples), or epochs "
            "with --batch (default 20)"
        ),
    )
    train.add_argument(
        "--batch", action="store_true", help="batch training (epochs) instead of online steps"
    )
    train.add_argument(
        "--finish",
        choices=sorted(FINISHES),
        default="batch",
        help="end online training with the closing batch step (batch, the default) or not",
    )
    train.add_argument("--metric", choices=sorted(METRICS), default="euclidean")
    train.add_argument(
        "--nan-policy",
        choices=sorted(NAN_POLICIES),
        default="raise",
        help="ignore: empty cells (and nan) are missing values, here and when the model "
        "projects or plots data",
    )
    train.add_argument("--normalize", action="store_true", help="min-max scale each feature")
    train.add_argument("--backend", choices=BACKENDS, default="auto")
    train.add_argument("--seed", type=_seed, metavar="S")
    train.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    train.set_defaults(run=_train)

    project = commands.add_parser("project", help="write each sample's BMU (row, col) as CSV")
    project.add_argument("model", metavar="MODEL")
    project.add_argument("data", metavar="DATA")
    project.add_argument("--out", required=True, metavar="OUT.csv")
    project.set_defaults(run=_project)

    plot = commands.add_parser("plot", help="draw the model's pictures into a directory")
    plot.add_argument("model", metavar="MODEL")
    plot.add_argument("--out", required=True, metavar="DIR")
    plot.add_argument("--data", metavar="DATA", help="also draw the hit map of these samples")
    plot.add_argument(
        "--labels", metavar="COLUMN", help="DATA's column of labels: also draw the labels map"
    )
    plot.set_defaults(run=_plot)

    demo = commands.add_parser("demo", help="the walk-through's colour map and its pictures")
    demo.add_argument("--out", required=True, metavar="DIR")
    demo.add_argument("--seed", type=_seed, default=0, metavar="S")
    demo.set_defaults(run=_demo)
    return parser


def _check_options_before_command(parser, argv):
    """Report options before the command that ``gpusom`` does not take. argparse would hand the
    command its arguments first, and ``gpusom -x train`` would blame train's missing ones."""
    known = set(parser._option_string_actions)
    unknown = []
    for arg in argv:
        if not arg.startswith("-"):
            break  # the command: its own parser takes the rest
        if arg.split("=")[0] not in known:
            unknown.append(arg)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")


def main(argv=None):
    """Run the ``gpusom`` command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 2 for a mistake in the input, 130 when interrupted.
    """
    try:
        parser = build_parser()
        _check_options_before_command(parser, sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.error("the following arguments are required: COMMAND")
        if args.command in ("plot", "demo"):
            import matplotlib

            matplotlib.use("Agg")  # pictures go to files only
        # The commands, and the SOM, analysis and demo code they call, print their messages;
        # none of them is a result, which the commands write to files.
        with contextlib.redirect_stdout(sys.stderr):
            args.run(args)
    except SystemExit as exc:  # only --help and --version exit: they printed, their status is 0
        return exc.code
    except KeyboardInterrupt as exc:
        print(f"gpusom: {exc or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, TypeError, OSError, BackendUnavailableError) as exc:
        # One line, whatever the message: some (feature-name mismatches) span several.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"gpusom: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())

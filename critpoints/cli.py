"""The ``critpoints`` command: enumerate stationary points, map a landscape, run training dynamics, a demo.

Usage::

    critpoints enumerate --p 4 --d 4 --m 4 --loss spectral --encoder symrelu --bias -0.3 \\
        --constraint unit_rows --restarts 50 --seed 0 --json points.json --csv points.csv --plot figures/
    critpoints landscape --p 4 --d 4 --m 4 --loss spectral --encoder symrelu --bias -0.3 \\
        --constraint unit_rows --restarts 200 --db claim3.sqlite --plot figures/
    critpoints dynamics --p 4 --d 4 --m 4 --loss ncl_cosine --encoder symrelu --bias -0.3 \\
        --constraint unit_rows --starts 100 --init warm_start:2 --json runs.json
    critpoints demo

The setting flags mirror the keywords of :class:`critpoints.Setting`; a parameterised short
form is written with colons: ``--dictionary random:3``, ``--latent fixed_count:2:1``,
``--latent bernoulli:0.3``, ``--latent sparsity:0.1`` (the paper's sparsity, mapped by
``sparsity_to_counts``), ``--augmentation independent_mask:0.5``, ``--augmentation
complementary_mask``, ``--expectation sample_average:2000:0``, ``--bias trainable`` or
``--bias -0.3`` or ``--bias -0.3,-0.2,-0.3,-0.2``.

Errors in the flags, settings that ``Setting`` rejects (or whose estimated memory exceeds
``--max-memory-gib``) and output paths that cannot be written print one line
``critpoints <command>: error: ...`` on standard error and exit with status 2, before any
computation. The resource estimate of the setting (critpoints.losses.resources) is printed
first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from critpoints.model.presets import claim_setting
from critpoints.model.setting import CONSTRAINTS, ENCODERS, LOSSES, PREDICTOR_CONSTRAINTS, Setting


class UsageError(Exception):
    """A bad command line (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (with a pointer to --help) and exit 2."""

    def error(self, message: str) -> NoReturn:  # noqa: D102 (argparse API)
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def short_form(text: str) -> str | tuple:
    """``"name:a:b"`` -> ``("name", a, b)`` with numbers converted; ``"name"`` stays a string."""
    name, *args = text.split(":")
    return (name, *map(_number, args)) if args else name


def _bias(text: str | None):
    if text is None or text == "trainable":
        return text
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"bias must be a number, comma-separated numbers or 'trainable', got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _latent(text: str, d: int):
    form = short_form(text)
    if isinstance(form, tuple) and form[0] == "sparsity":
        from critpoints.model.latent import sparsity_to_counts

        if len(form) != 2 or not isinstance(form[1], (int, float)):
            raise ValueError(f"latent sparsity needs one number, e.g. sparsity:0.1, got {text!r}")
        return ("fixed_count", *sparsity_to_counts(float(form[1]), d))
    return form


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that build a :class:`Setting` (its keywords)."""
    group = parser.add_argument_group("setting (the keywords of critpoints.Setting)")
    group.add_argument("--p", type=int, required=True, help="input dimension")
    group.add_argument("--d", type=int, required=True, help="number of dictionary atoms")
    group.add_argument("--m", type=int, required=True, help="number of neurons")
    group.add_argument("--loss", required=True, choices=LOSSES)
    group.add_argument("--dictionary", default="identity", help="identity | random:SEED")
    group.add_argument(
        "--latent",
        default="one_hot",
        help="one_hot | one_hot:positive | fixed_count:K:KNEG | bernoulli:PROB | sparsity:S",
    )
    group.add_argument("--noise", type=float, default=0.0, help="sigma of the Gaussian input noise")
    group.add_argument(
        "--augmentation",
        default="independent_mask:0.5",
        help="independent_mask:Q (Q the drop probability) | complementary_mask",
    )
    group.add_argument("--encoder", default="linear", choices=ENCODERS)
    group.add_argument("--bias", default=None, help="symrelu bias: a number, m comma-separated numbers, or trainable")
    group.add_argument("--constraint", default="none", choices=CONSTRAINTS)
    group.add_argument(
        "--expectation", default="auto", help="auto | closed_form | exact_enumeration | sample_average:N:SEED"
    )
    group.add_argument("--temperature", type=float, default=None, help="infonce temperature")
    group.add_argument("--tied", action=argparse.BooleanOptionalAction, default=None, help="ncl_cosine: one encoder")
    group.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ncl_predictor: cosine (default) or raw inner products",
    )
    group.add_argument("--predictor-constraint", default=None, choices=PREDICTOR_CONSTRAINTS)
    group.add_argument("--max-support-size", type=int, default=None, help="largest exact enumeration")
    group.add_argument(
        "--max-memory-gib",
        type=float,
        default=None,
        help="largest estimated memory per process (default: 80%% of this machine's memory)",
    )


def build_setting(args: argparse.Namespace) -> Setting:
    """The :class:`Setting` of parsed flags (raises Setting's ValueError / TypeError)."""
    keywords = dict(
        p=args.p,
        d=args.d,
        m=args.m,
        loss=args.loss,
        dictionary=short_form(args.dictionary),
        latent=_latent(args.latent, args.d),
        noise=args.noise,
        augmentation=short_form(args.augmentation),
        encoder=args.encoder,
        bias=_bias(args.bias),
        constraint=args.constraint,
        expectation=short_form(args.expectation),
        temperature=args.temperature,
        tied=args.tied,
        normalize=args.normalize,
        predictor_constraint=args.predictor_constraint,
    )
    if args.max_support_size is not None:
        keywords["max_support_size"] = args.max_support_size
    if args.max_memory_gib is not None:
        keywords["max_memory_gib"] = args.max_memory_gib
    return Setting(**keywords)


def _executor(jobs: int | None):
    if jobs == 1:
        from critpoints.solver.restarts import InProcessExecutor

        return InProcessExecutor()
    return None


def _export(result, args: argparse.Namespace) -> None:
    """Write the result to the --json and --csv files that were asked for."""
    for path, write in ((args.json, result.to_json), (args.csv, result.to_csv)):
        if path:
            write(path)
            print(f"wrote {path}")


def _figure_path(args: argparse.Namespace, name: str) -> Path:
    """The file ``name`` in the --plot folder, with the --plot-format extension."""
    return Path(args.plot) / f"{name}.{args.plot_format}"


def _enumerate(args: argparse.Namespace, setting: Setting) -> int:
    from critpoints.landscape.engine import enumerate_critical_points

    result = enumerate_critical_points(
        setting,
        n_restarts=args.restarts,
        seed=args.seed,
        executor=_executor(args.jobs),
        progress=args.progress,
    )
    print(result)
    _export(result, args)
    if args.plot:
        from critpoints import plots

        for path in (
            plots.minima_heatmaps(result, setting, _figure_path(args, "minima")),
            plots.hessian_spectra(result, setting, _figure_path(args, "spectra")),
            plots.index_vs_loss(result, _figure_path(args, "index_vs_loss")),
        ):
            print(f"wrote {path}")
    return 0


def _landscape(args: argparse.Namespace, setting: Setting) -> int:
    from critpoints.landscape.database import LandscapeDatabase
    from critpoints.landscape.mapping import map_landscape

    if setting.loss.is_field:
        print(
            f"critpoints landscape: error: loss {setting.loss} is a stop-gradient field without a loss: "
            "there are no barriers to map (critpoints enumerate lists its zeros)",
            file=sys.stderr,
        )
        return 2
    began = time.perf_counter()
    try:
        database = LandscapeDatabase(args.db) if args.db else None
    except ValueError as error:
        print(f"critpoints landscape: error: {error}", file=sys.stderr)
        return 2
    try:
        graph = map_landscape(
            setting,
            database,
            n_restarts=args.restarts,
            seed=args.seed,
            minima=args.minima,
            neighbours=args.neighbours,
            max_searches=args.searches,
            executor=_executor(args.jobs),
            progress=args.progress,
        )
    finally:
        if database is not None:
            database.close()
    print(graph)
    _export(graph, args)
    if args.plot:
        from critpoints import plots

        print(f"wrote {plots.disconnectivity_graph(graph, Path(args.plot) / 'disconnectivity.png')}")
    print(f"landscape mapped in {time.perf_counter() - began:.1f} s")
    return 0


def _dynamics(args: argparse.Namespace, setting: Setting) -> int:
    from critpoints.dynamics.descent import run_dynamics
    from critpoints.landscape.engine import enumerate_critical_points

    init = short_form(args.init)
    table = None
    if args.match:
        table = enumerate_critical_points(
            setting,
            n_restarts=args.match,
            seed=args.seed,
            executor=_executor(args.jobs),
            progress=args.progress,
        )
    result = run_dynamics(
        setting,
        n_starts=args.starts,
        seed=args.seed,
        init=init,
        lr=args.lr,
        max_steps=args.max_steps,
        tol=args.tol,
        schedule=args.schedule,
        step=args.step,
        critical_points=table,
    )
    print(result)
    _export(result, args)
    if args.plot:
        from critpoints import plots

        path = plots.alignment_histogram(result, _figure_path(args, "alignment"))
        print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace, setting: None = None) -> int:
    from critpoints.dynamics.descent import run_dynamics
    from critpoints.landscape.engine import enumerate_critical_points
    from critpoints.solver.restarts import InProcessExecutor

    began = time.perf_counter()
    for loss in ("spectral", "ncl_cosine"):
        demo = claim_setting(loss, 3)
        table = enumerate_critical_points(
            demo, n_restarts=args.restarts, seed=0, executor=InProcessExecutor(), progress=False
        )
        print(table)
        print()
        print(run_dynamics(demo, n_starts=args.starts, seed=0, lr=0.05, max_steps=5000, critical_points=table))
        print()
    print(f"demo finished in {time.perf_counter() - began:.1f} s")
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """Validate the non-setting options up front, so that only user errors exit with status 2,
    and before any computation (output paths included)."""
    from critpoints import _files
    from critpoints import _validation as check
    from critpoints.landscape.initialization import check_init

    for name in ("restarts", "starts"):
        if getattr(args, name, None) is not None:
            # a landscape may take its minima from the minima-first search alone, or resume a file
            fewest = 0 if args.command == "landscape" else 1
            check.integer(f"--{name}", getattr(args, name), minimum=fewest)
    if getattr(args, "jobs", None) is not None:
        check.integer("--jobs", args.jobs, minimum=1)
    if args.command == "landscape":
        check.integer("--neighbours", args.neighbours, minimum=0)
        check.integer("--searches", args.searches, minimum=0)
    if args.command == "dynamics":
        check.real("--lr", args.lr, low=0.0, low_open=True)
        check.real("--tol", args.tol, low=0.0, low_open=True)
        check.integer("--max-steps", args.max_steps, minimum=0)
        check.integer("--match", args.match, minimum=0)
        try:
            check_init(short_form(args.init), args.starts)
        except (TypeError, ValueError) as error:
            raise ValueError(f"--init {args.init}: {error}") from None
    if getattr(args, "seed", None) is not None:
        check.integer("--seed", args.seed, minimum=0)
    for flag in ("json", "csv"):
        if getattr(args, flag, None):
            _files.check_output_path(f"--{flag}", getattr(args, flag))
    if getattr(args, "plot", None):
        folder = Path(args.plot)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"--plot must be a folder, got --plot={args.plot!r}, which is a file")
        existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"--plot: cannot create or write {args.plot!r} (no write permission in {str(existing)!r})")


def make_parser() -> argparse.ArgumentParser:
    """The parser of the ``critpoints`` command and its subcommands."""
    parser = _Parser(prog="critpoints", description="Stationary points and training dynamics of SSL population losses.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    enumerate_ = commands.add_parser("enumerate", help="all stationary points Newton finds from seeded starts")
    add_setting_arguments(enumerate_)
    enumerate_.add_argument("--restarts", type=int, default=200, help="number of Newton starts")
    enumerate_.add_argument("--seed", type=int, default=0)
    enumerate_.add_argument("--jobs", type=int, default=None, help="1: run in this process; default: all CPUs")
    enumerate_.add_argument("--json", metavar="FILE", help="write the result as JSON")
    enumerate_.add_argument("--csv", metavar="FILE", help="write the result as CSV")
    enumerate_.add_argument("--plot", metavar="DIR", help="write figures into DIR (created if needed)")
    enumerate_.add_argument("--plot-format", default="png", choices=("png", "svg", "pdf"), help="figure file format")
    enumerate_.add_argument("--progress", action="store_true", help="show a progress bar")
    enumerate_.set_defaults(run=_enumerate)

    landscape = commands.add_parser(
        "landscape", help="minima joined by index-1 saddles, kept in a database; the disconnectivity graph"
    )
    add_setting_arguments(landscape)
    landscape.add_argument("--restarts", type=int, default=200, help="number of Newton starts (those done are skipped)")
    landscape.add_argument("--seed", type=int, default=0)
    landscape.add_argument(
        "--minima",
        choices=("explore", "restarts"),
        default="explore",
        help="explore (default): also the minima-first search, which finds minima with small basins that "
        "restarts miss; restarts: the Newton starts only",
    )
    landscape.add_argument("--db", metavar="FILE", help="the SQLite landscape database to add to (resumed if present)")
    landscape.add_argument("--neighbours", type=int, default=1, help="nearest basins each basin is searched with")
    landscape.add_argument("--searches", type=int, default=100, help="saddle searches between basins at most")
    landscape.add_argument("--jobs", type=int, default=None, help="1: run in this process; default: all CPUs")
    landscape.add_argument("--json", metavar="FILE", help="write the graph as JSON")
    landscape.add_argument("--csv", metavar="FILE", help="write the graph's nodes and edges as CSV")
    landscape.add_argument("--plot", metavar="DIR", help="write the disconnectivity graph into DIR")
    landscape.add_argument("--progress", action="store_true", help="show progress bars")
    landscape.set_defaults(run=_landscape)

    dynamics = commands.add_parser("dynamics", help="gradient descent from many starts: basin fractions by label")
    add_setting_arguments(dynamics)
    dynamics.add_argument("--starts", type=int, default=100, help="number of runs")
    dynamics.add_argument("--seed", type=int, default=0)
    dynamics.add_argument("--init", default="gaussian", help="gaussian | gaussian:SCALE | warm_start:C | uniform")
    dynamics.add_argument("--lr", type=float, default=0.02, help="step size")
    dynamics.add_argument("--max-steps", type=int, default=20000)
    dynamics.add_argument("--tol", type=float, default=1e-9, help="stationarity tolerance (relative)")
    dynamics.add_argument("--schedule", default="auto", choices=("auto", "simultaneous", "alternating"))
    dynamics.add_argument("--step", default="riemannian", choices=("riemannian", "projected"))
    dynamics.add_argument(
        "--match",
        type=int,
        default=0,
        metavar="RESTARTS",
        help="enumerate with this many restarts first and match every run to its point",
    )
    dynamics.add_argument("--jobs", type=int, default=None, help="for --match: 1 runs Newton in this process")
    dynamics.add_argument("--json", metavar="FILE", help="write the runs as JSON")
    dynamics.add_argument("--csv", metavar="FILE", help="write one row per run as CSV")
    dynamics.add_argument("--plot", metavar="DIR", help="write the alignment histogram into DIR")
    dynamics.add_argument("--plot-format", default="png", choices=("png", "svg", "pdf"), help="figure file format")
    dynamics.add_argument("--progress", action="store_true", help="show a progress bar (with --match)")
    dynamics.set_defaults(run=_dynamics)

    demo = commands.add_parser("demo", help="a small CL vs NCL comparison: enumeration and dynamics")
    demo.add_argument("--restarts", type=int, default=60)
    demo.add_argument("--starts", type=int, default=100)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``critpoints`` console script; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for a bad command line, a setting that ``Setting`` rejects or whose
        memory estimate exceeds its limit, or an output path that cannot be written (after
        one line on standard error, before any computation); 130 after Ctrl-C.
    """
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(str(error), file=sys.stderr)
        return 2
    try:
        _check_options(args)
        setting = build_setting(args) if args.command in ("enumerate", "landscape", "dynamics") else None
    except (ValueError, TypeError) as error:
        message = " ".join(str(error).split())
        print(f"critpoints {args.command}: error: {message}", file=sys.stderr)
        return 2

    if setting is not None:  # the estimate first; a setting beyond the memory limit stops here
        from critpoints.losses.resources import check_resources

        try:
            print(check_resources(setting).describe())
        except ValueError as error:
            print(f"critpoints {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
            return 2
    try:
        return args.run(args, setting)
    except KeyboardInterrupt as interrupt:
        detail = f": {interrupt}" if str(interrupt) else ""
        print(f"critpoints {args.command}: interrupted{detail}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

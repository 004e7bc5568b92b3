"""``python -m derivations``: verify every derivation, then check and write every generated module.

Options::

    python -m derivations                       # everything
    python -m derivations pointwise_losses ...  # only these derivations
    python -m derivations --no-verify           # regenerate (emitted modules are still checked)
    python -m derivations --verbose             # also print what each derivation states

Nothing is written unless every verification and every check of the emitted code passes;
files whose text is unchanged are not touched, so an up-to-date tree stays clean.
"""

from __future__ import annotations

import argparse
import time

from derivations import NAMES, codegen, load


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m derivations", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", choices=[[], *NAMES], metavar="derivation", help=", ".join(NAMES))
    parser.add_argument("--no-verify", action="store_true", help="skip the derivations' own verification")
    parser.add_argument("--verbose", action="store_true", help="print what each derivation states")
    args = parser.parse_args(argv)
    selected = [load(name) for name in (args.names or NAMES)]
    files: dict[str, str] = {}
    for module in selected:
        name = module.__name__.rpartition(".")[2]
        began = time.perf_counter()
        if not args.no_verify:
            module.verify()
        emitted = module.generate() if hasattr(module, "generate") else {}
        if emitted:
            module.check_emitted(emitted)
            files.update(emitted)
        done = "verified" if not args.no_verify else "not verified"
        checked = f", {len(emitted)} generated module(s) checked" if emitted else ""
        print(f"{name}: {done}{checked} ({time.perf_counter() - began:.1f} s)", flush=True)
        if args.verbose and hasattr(module, "summary"):
            print(module.summary())
    changed = codegen.write_files(files)
    for path in changed:
        print(f"wrote {path}")
    if files and not changed:
        print("every generated module is up to date")


if __name__ == "__main__":
    main()

"""Runs the checker over parsed units: declarations, initial values, bodies, warnings -> ProgramModel."""

from __future__ import annotations

from typing import Any

from . import st_ast as A
from . import st_types as T
from .checker import BodyChecker
from .declarations import Declarations
from .diagnostics import DiagnosticBag
from .model import EnumRef, ProgramModel, pou_types_in
from .pou_rules import check_safe_values, report_recursion


def check_program(
    units: list[A.CompilationUnit], library_files: set[str], main_file: str, diag: DiagnosticBag
) -> ProgramModel:
    decls = Declarations(diag)
    decls.collect(units, library_files)
    decls.resolve_all(units, library_files)
    globals_name, tasks, instances = decls.configure(units, main_file)
    init_checker = BodyChecker(decls, None, diag)
    for var in decls.globals.values():
        check_initializer(init_checker, var.type, var.init, var.pos)

    checked: set[str] = set()
    call_sites: dict[str, list[tuple[T.PouType, Any]]] = {}
    pending = [p for p in decls.pous.values() if not p.library]
    pending += [i.pou for i in instances]
    pending += [p for v in decls.globals.values() for p in pou_types_in(v.type)]
    while pending:
        pou = pending.pop()
        key = pou.name.upper()
        if key in checked:
            continue
        checked.add(key)
        checker = BodyChecker(decls, pou, diag)
        for var in pou.variables.values():
            check_initializer(checker, var.type, var.init, var.pos)
            pending.extend(pou_types_in(var.type))
        checker.body(pou.decl.body)
        pou.calls = list(checker.calls)
        call_sites[key] = checker.call_sites
        pending.extend(checker.calls)
        if not pou.library:
            _unused_warnings(pou, diag)
    decls.scope = ""
    report_recursion(decls.pous, call_sites, main_file, diag)
    check_safe_values(decls, diag)
    return ProgramModel(
        types=decls.types,
        pous=decls.pous,
        globals=decls.globals,
        globals_name=globals_name,
        tasks=tasks,
        instances=instances,
        main_file=main_file,
        type_inits=decls.type_inits,
        decls=decls,
        quality_reads=decls.quality_reads,
    )


def _unused_warnings(pou: T.PouType, diag: DiagnosticBag) -> None:
    for var in pou.variables.values():
        if var.section in ("VAR", "VAR_TEMP") and not var.used and not var.assigned and var.location is None:
            diag.warning("W0101", f"variable '{var.name}' is never used", var.pos, "remove it or use it")


def check_initializer(checker: BodyChecker, var_type: T.Type, init: Any, pos: Any) -> None:
    """An initial value must be a constant of the variable's type (arrays and structures nest)."""
    if init is None or isinstance(var_type, T.ErrorType):
        return
    t = T.underlying(var_type)
    if isinstance(init, A.ArrayInit):
        if not isinstance(t, T.ArrayType):
            checker.diag.error(
                "E0201", f"an array initialiser cannot initialise {var_type.display}", init.pos
            )
            return
        count = 0
        for element in init.elements:
            if isinstance(element, A.RepeatedInit):
                count += element.count
                if element.value is not None:
                    check_initializer(checker, t.element, element.value, element.pos)
            else:
                count += 1
                check_initializer(checker, t.element, element, getattr(element, "pos", pos))
        if count > t.size:
            checker.diag.error("E0202", f"{count} initial values for an array of {t.size} elements", init.pos)
        return
    if isinstance(init, A.StructInit):
        if isinstance(t, T.StructType):
            members = t.fields
        elif isinstance(t, T.PouType):
            members = {k: v for k, v in t.variables.items() if v.section not in ("VAR_TEMP", "VAR_EXTERNAL")}
        else:
            checker.diag.error(
                "E0201", f"a structure initialiser cannot initialise {var_type.display}", init.pos
            )
            return
        for name, name_pos, value in init.fields:
            member = members.get(name.upper())
            if member is None:
                checker.diag.error("E0104", f"{t.display} has no member '{name}'", name_pos)
                continue
            check_initializer(checker, member.type, value, name_pos)
        return
    if isinstance(t, T.ArrayType | T.StructType | T.PouType):
        if isinstance(t, T.ArrayType) and isinstance(init, A.Expr):
            # a single value fills the whole array only in the [n(value)] form; say so
            checker.diag.error("E0201", "initialise an array with [v1, v2, ...] or [n(value)]", init.pos)
        else:
            checker.diag.error("E0201", f"cannot initialise {var_type.display} with a single value", init.pos)
        return
    value_type = checker.expr(init, var_type)
    checker.check_assignable(var_type, init, value_type, init.pos)
    if isinstance(value_type, T.ErrorType):
        return
    if checker.decls.const_value(init) is None and not _is_enum_value(init):
        checker.diag.error("E0206", "an initial value must be a constant", init.pos)


def _is_enum_value(e: Any) -> bool:
    if isinstance(e, A.EnumLit):
        return True
    if isinstance(e, A.Name) and isinstance(e.ref, EnumRef):
        return True
    return isinstance(e, A.DateLit)

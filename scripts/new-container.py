#!/usr/bin/env python3
"""Generate a sync-ready domain container (`make container NAME=inventory …`).

Writes, from the templates in scripts/container-template/ (files with {{placeholders}}):

- containers/<name>/: the crate (model, payload, data, actions that record every write, the
  SyncResource, the route table with controllers/requests/transformers, errors, validation)
  and its tests (actions, HTTP, the resource's last-writer-wins apply, two regions), every
  database test once per backend (ship::backend_tests!);
- migrations/{sqlite,mysql,postgres}/<version>_<name>_create_<name>/ and
  <version+1>_<name>_add_sync_columns/ (up.sql and down.sql each);
- the wiring: `<name>::domain(),` in crates/app/src/wiring.rs `domains()`, the path dependency
  in the root Cargo.toml and `<name> = { workspace = true }` in crates/app/Cargo.toml.

Fields: `name:type[:arg]`, separated by spaces or commas. Types: `string[:max]` (1..max
characters, not blank; max 200 by default), `text` (up to 16,000 characters, may be empty),
`int[:min..max]` (i64; either bound may be left out), `bool`, `timestamp` (RFC 3339, UTC,
microseconds). Or `--spec file.toml` with `fields = ["sku:string:64", …]` (or `[[fields]]`
tables with name/type/max/min) and optionally `name` and `entity`.

Nothing is written when any input is refused or with --dry-run. Python 3.11, stdlib only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
TEMPLATE = SCRIPTS / "container-template"
DEFAULT_ROOT = SCRIPTS.parent

IDENT = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

TYPES = ("string", "text", "int", "bool", "timestamp")
STRING_DEFAULT_MAX = 200
STRING_MAX = 1000  # longer: use `text`
TEXT_MAX = 16_000  # 4 bytes a character in MariaDB's TEXT (65,535 bytes)
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
NAME_MAX_LEN = 40  # index names (`<name>_tenant_id_id_idx`) stay under MariaDB's 64

# Columns every entity has (or that its API uses): a field may not take their names.
RESERVED_FIELDS = {"id", "tenant_id", "created_at", "updated_at", "deleted_at", "version"}
# Names diesel's `table!` module uses itself.
DIESEL_RESERVED = {"table", "star", "all_columns", "columns", "dsl"}
# Crates and words a container may not be named after.
RESERVED_NAMES = {
    "ship", "app", "harness", "sync", "broker", "core", "std", "alloc", "test", "proc_macro",
    "schema", "mod", "lib", "main", "build", "tests", "common", "payload", "models", "data",
    "actions", "tasks", "ui", "errors", "validation", "resource",
}
RUST_KEYWORDS = set("""
as async await break const continue crate dyn else enum extern false fn for if impl in let loop
match mod move mut pub ref return self super static struct trait true type unsafe use where
while abstract become box do final macro override priv typeof unsized virtual yield try gen
""".split())
# MariaDB's reserved words and SQLite's keywords: refused as table and column names (quoting
# them in every statement diesel and the templates write is not worth it).
SQL_RESERVED = set("""
abort accessible action add after all alter always analyze and as asc asensitive attach
autoincrement before begin between bigint binary blob both by call cascade case cast change
char character check collate column commit condition conflict constraint continue convert
create cross current current_date current_role current_time current_timestamp current_user
cursor database databases day_hour day_microsecond day_minute day_second dec decimal declare
default deferrable deferred delayed delete desc describe detach deterministic distinct
distinctrow div do double drop dual each else elseif enclosed end escape escaped except
exclude exclusive exists exit explain fail false fetch filter first float float4 float8
following for force foreign from full fulltext general generated glob grant group groups having
high_priority hour_microsecond hour_minute hour_second if ignore immediate in index indexed
infile initially inner inout insensitive insert instead int int1 int2 int3 int4 int8 integer
intersect interval into is isnull iterate join key keys kill last leading leave left like limit
linear lines load localtime localtimestamp lock long longblob longtext loop low_priority match
materialized maxvalue mediumblob mediumint mediumtext middleint minute_microsecond
minute_second mod modifies natural no not nothing notnull no_write_to_binlog null nulls numeric
of offset on optimize option optionally or order others out outer outfile over partition plan
position pragma preceding precision primary procedure purge query raise range read reads
read_write real recursive references regexp reindex release rename repeat replace require
resignal restrict return returning revoke right rlike rollback row row_number rows savepoint
schema schemas second_microsecond select sensitive separator set show signal slow smallint
spatial specific sql sqlexception sqlstate sqlwarning sql_big_result sql_calc_found_rows
sql_small_result ssl starting straight_join table temp temporary terminated then ties tinyblob
tinyint tinytext to trailing transaction trigger true unbounded undo union unique unlock
unsigned update usage use using utc_date utc_time utc_timestamp vacuum values varbinary varchar
varcharacter varying view virtual when where while window with without write xor year_month
zerofill
""".split())


class Refused(Exception):
    """Bad input: the message says what and how to fix it."""


@dataclass
class Field:
    name: str
    type: str
    max_len: int | None = None  # string
    min_int: int | None = None  # int
    max_int: int | None = None  # int

    @property
    def upper(self) -> str:
        return self.name.upper()

    @property
    def lo(self) -> int:
        return I64_MIN if self.min_int is None else self.min_int

    @property
    def hi(self) -> int:
        return I64_MAX if self.max_int is None else self.max_int


# --- input -------------------------------------------------------------------------------------


def camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def plural(word: str) -> str:
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def check_name(name: str, root: Path) -> None:
    if not name:
        raise Refused("NAME is required: make container NAME=inventory [FIELDS=\"sku:string:64 …\"]")
    if not IDENT.match(name):
        raise Refused(
            f"NAME `{name}` is not a lowercase identifier: letters a-z, digits and single "
            "underscores, starting with a letter (e.g. inventory, stock_items)"
        )
    if len(name) > NAME_MAX_LEN:
        raise Refused(f"NAME `{name}` is longer than {NAME_MAX_LEN} characters")
    if name in RUST_KEYWORDS or name in RESERVED_NAMES:
        raise Refused(f"NAME `{name}` is reserved (a Rust keyword or a name the workspace uses)")
    if name in SQL_RESERVED:
        raise Refused(f"NAME `{name}` is an SQL reserved word; it would be the table's name")
    containers = root / "containers"
    if (containers / name).exists():
        raise Refused(f"container `{name}` exists already (containers/{name}/)")
    prefix = name.split("_")[0]
    if prefix != name and (containers / prefix).is_dir():
        raise Refused(
            f"NAME `{name}` starts with `{prefix}_`, the table prefix of the `{prefix}` "
            "container: pick a name of its own"
        )
    manifest = (root / "Cargo.toml").read_text()
    if re.search(rf"^{re.escape(name)}\s*=", manifest, re.M):
        raise Refused(f"`{name}` is a dependency of the workspace already (root Cargo.toml)")
    migrations = [p.name for b in ("sqlite", "mysql", "postgres")
                  for p in (root / "migrations" / b).glob("*")]
    if any(re.match(rf"^[\d-]+_{re.escape(name)}_", m) for m in migrations):
        raise Refused(f"migrations named after `{name}` exist already (migrations/*/*_{name}_*)")


def check_entity(entity: str) -> None:
    if not IDENT.match(entity):
        raise Refused(f"ENTITY `{entity}` is not a lowercase identifier (e.g. item, stock_item)")
    if entity in RUST_KEYWORDS or entity in RESERVED_NAMES:
        raise Refused(f"ENTITY `{entity}` is reserved (a Rust keyword or a module name)")


def parse_int(text: str, what: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise Refused(f"{what}: `{text}` is not a whole number") from None
    if not I64_MIN <= value <= I64_MAX:
        raise Refused(f"{what}: {value} does not fit in 64 bits")
    return value


def parse_field(spec: str | dict) -> Field:
    if isinstance(spec, dict):
        unknown = set(spec) - {"name", "type", "max", "min"}
        if unknown:
            raise Refused(f"field {spec}: unknown keys {sorted(unknown)} (name, type, max, min)")
        name, ftype = str(spec.get("name", "")), str(spec.get("type", ""))
        arg = None
        if ftype == "string" and "max" in spec:
            arg = str(spec["max"])
        elif ftype == "int" and ("min" in spec or "max" in spec):
            arg = f"{spec.get('min', '')}..{spec.get('max', '')}"
        elif "max" in spec or "min" in spec:
            raise Refused(f"field `{name}`: min/max apply to string (max) and int only")
    elif not isinstance(spec, str):
        raise Refused(f"field {spec!r}: expected \"name:type[:arg]\" or a table (name, type, max, min)")
    else:
        parts = spec.split(":")
        if len(parts) < 2 or len(parts) > 3:
            raise Refused(
                f"field `{spec}`: expected name:type or name:type:arg "
                "(e.g. sku:string:64, quantity:int:0..1000, note:text, active:bool)"
            )
        name, ftype = parts[0], parts[1]
        arg = parts[2] if len(parts) == 3 else None
    where = f"field `{name}`"
    if not IDENT.match(name):
        raise Refused(f"{where}: not a lowercase identifier (letters a-z, digits, underscores)")
    if len(name) > 48:
        raise Refused(f"{where}: longer than 48 characters")
    if name in RESERVED_FIELDS or name.startswith("sync_"):
        raise Refused(
            f"{where} is reserved: every entity has id, tenant_id, created_at, updated_at, "
            "deleted_at and the sync_* columns, and the API adds version"
        )
    if name in RUST_KEYWORDS or name in DIESEL_RESERVED:
        raise Refused(f"{where}: a Rust keyword or a name diesel's table! uses; rename it")
    if name in SQL_RESERVED:
        raise Refused(f"{where}: `{name}` is an SQL reserved word; rename it (e.g. {name}_value)")
    if ftype not in TYPES:
        raise Refused(f"{where}: unknown type `{ftype}`; one of {', '.join(TYPES)}")
    field = Field(name, ftype)
    if ftype == "string":
        field.max_len = STRING_DEFAULT_MAX if arg in (None, "") else parse_int(arg, where)
        if not 1 <= field.max_len <= STRING_MAX:
            raise Refused(f"{where}: a string's max length is 1 to {STRING_MAX}; use text beyond")
    elif ftype == "int":
        if arg not in (None, ""):
            if ".." not in arg:
                raise Refused(f"{where}: an int's range is min..max (either may be left out)")
            lo, hi = arg.split("..", 1)
            field.min_int = parse_int(lo, where) if lo else None
            field.max_int = parse_int(hi, where) if hi else None
            if field.lo >= field.hi:
                raise Refused(f"{where}: the range {arg} is empty or a single value")
    elif arg is not None:
        raise Refused(f"{where}: type {ftype} takes no argument")
    return field


def parse_fields(specs: list, name: str) -> list[Field]:
    fields = [parse_field(s) for s in specs]
    if not fields:
        raise Refused("no fields: give at least one, e.g. FIELDS=\"name:string:200\"")
    seen = set()
    for f in fields:
        if f.name in seen:
            raise Refused(f"field `{f.name}` is given twice")
        if f.name == name:
            raise Refused(f"field `{f.name}` has the table's name; diesel cannot tell them apart")
        seen.add(f.name)
    row_bytes = sum(4 * f.max_len for f in fields if f.type == "string")
    if row_bytes > 60_000:
        raise Refused(
            "the string fields may take more than MariaDB's 65,535 bytes a row "
            "(4 bytes a character): make some of them text"
        )
    return fields


# --- the code of each field --------------------------------------------------------------------

RUST_TYPE = {"string": "String", "text": "String", "int": "i64", "bool": "bool",
             "timestamp": "chrono::NaiveDateTime"}
DIESEL_TYPE = {"string": "Text", "text": "Text", "int": "BigInt", "bool": "Bool",
               "timestamp": "Timestamp"}
JSON_TYPE = {"string": "String", "text": "String", "int": "i64", "bool": "bool",
             "timestamp": "String"}
SAMPLE_TS, CHANGED_TS = "2026-11-25T15:00:00.123456Z", "2026-12-01T08:30:00.000000Z"


def rust_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def i64_literal(v: int, bound: str) -> str:
    if v == I64_MIN:
        return "i64::MIN"
    if v == I64_MAX:
        return "i64::MAX"
    return f"{v:_}"


def sql_type(f: Field, backend: str) -> str:
    # PostgreSQL (ADR 0018): every character column COLLATE "C", TIMESTAMP (UTC, µs).
    collate = ' COLLATE "C"' if backend == "postgres" else ""
    return {
        "string": f"VARCHAR({f.max_len}){collate}",
        "text": f"TEXT{collate}",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "timestamp": "DATETIME(6)" if backend == "mysql" else "TIMESTAMP",
    }[f.type]


def pg_checks(fields: list["Field"], name: str) -> str:
    """MariaDB's TEXT byte limit as a named CHECK per text column (ADR 0018), each after a
    `,` that ends the line before."""
    return "".join(
        f",\n    CONSTRAINT {name}_{f.name}_bytes CHECK (octet_length({f.name}) <= 65535)"
        for f in fields if f.type == "text"
    )


def samples(f: Field) -> tuple[object, object]:
    """A valid value and a different valid one, as Python (JSON) values."""
    if f.type == "string":
        return f"sample {f.name}"[: f.max_len], f"changed {f.name}"[: f.max_len]
    if f.type == "text":
        return f"Some text about {f.name}: Zoë 🦀", "Changed text"
    if f.type == "int":
        first = min(max(7, f.lo), f.hi)
        return first, first + 1 if first < f.hi else first - 1
    if f.type == "bool":
        return True, False
    return SAMPLE_TS, CHANGED_TS


def rust_value(f: Field, value: object, crate: str) -> str:
    if f.type in ("string", "text"):
        return f"{rust_str(value)}.into()"
    if f.type == "int":
        return str(value)
    if f.type == "bool":
        return "true" if value else "false"
    return f"{crate}::models::parse_timestamp({rust_str(value)}).unwrap()"


def bad_field(f: Field) -> str:
    if f.type == "string":
        return f'("{f.name}", json!("x".repeat({f.max_len + 1})), "too_long")'
    if f.type == "int" and f.max_int is not None:
        return f'("{f.name}", json!({f.max_int + 1}_i64), "out_of_range")'
    if f.type == "int" and f.min_int is not None:
        return f'("{f.name}", json!({f.min_int - 1}_i64), "out_of_range")'
    if f.type == "timestamp":
        return f'("{f.name}", json!("2026-11-25 15:00:00"), "invalid_timestamp")'
    return f'("{f.name}", json!([1, 2]), "invalid_type")'


def rule_doc(f: Field) -> str:
    if f.type == "string":
        return f"1–{f.max_len} characters, not blank"
    if f.type == "text":
        return f"at most {TEXT_MAX:,} characters"
    if f.type == "int":
        if f.min_int is None and f.max_int is None:
            return "a whole number (64-bit)"
        return f"a whole number from {f.lo} to {f.hi}"
    if f.type == "bool":
        return "`true` or `false`"
    return "a timestamp (below)"


def body_doc(f: Field) -> str:
    """A field's rule as the OpenAPI document says it (a request body's property)."""
    if f.type == "timestamp":
        return "RFC 3339 with at most microsecond precision, e.g. 2026-11-25T15:00:00.123456Z"
    return rule_doc(f)[0].upper() + rule_doc(f)[1:]


def body_field(f: Field, optional: bool) -> str:
    """A property of a documented request body (`CreateXBody`, `UpdateXBody`)."""
    ty = JSON_TYPE[f.type]
    return f"    /// {body_doc(f)}.\n    pub {f.name}: {f'Option<{ty}>' if optional else ty},"


def take(f: Field, p: str) -> str:
    """The expression that reads field `f` from `object` (prefix `p`: `validation::` or `self::`
    for the rule; the take helpers themselves are named through `q`)."""
    q = "validation::" if p == "validation::" else ""
    if f.type in ("string", "text"):
        return f'{q}take(object, "{f.name}", {p}{f.name}, &mut errors)'
    if f.type == "int":
        return f'{q}take_int(object, "{f.name}", {p}{f.name}, &mut errors)'
    if f.type == "bool":
        return f'{q}take_bool(object, "{f.name}", &mut errors)'
    return f'{q}take_timestamp(object, "{f.name}", &mut errors)'


PARSED = ".and_then(|s| crate::models::parse_timestamp(&s))"


def fragments(name: str, fields: list[Field]) -> dict[str, str]:
    def lines(fn, sep="\n"):
        return sep.join(x for x in (fn(f) for f in fields) if x is not None)

    checked = [f for f in fields if f.type in ("string", "text", "int")]
    return {
        "model_fields": lines(lambda f: f"    pub {f.name}: {RUST_TYPE[f.type]},"),
        "schema_columns": lines(lambda f: f"        {f.name} -> {DIESEL_TYPE[f.type]},"),
        "payload_fields": lines(lambda f: f"    pub {f.name}: {JSON_TYPE[f.type]},"),
        "body_fields": lines(lambda f: body_field(f, False)),
        "update_body_fields": lines(lambda f: body_field(f, True)),
        "payload_doc": ", ".join(f"`{f.name}`" for f in fields),
        "field_list": ", ".join(f"`{f.name}`" for f in fields),
        "payload_rules_doc": lines(lambda f: f"/// - `{f.name}`: {rule_doc(f)};"),
        "payload_from_row": lines(lambda f: "            {0}: {1},".format(f.name, {
            "string": f"r.{f.name}.clone()", "text": f"r.{f.name}.clone()", "int": f"r.{f.name}",
            "bool": f"r.{f.name}", "timestamp": f"format_timestamp(r.{f.name})"}[f.type])),
        "row_from_payload": lines(lambda f: "            {0}: {1},".format(f.name, {
            "string": f"self.{f.name}.clone()", "text": f"self.{f.name}.clone()",
            "int": f"self.{f.name}", "bool": f"self.{f.name}",
            "timestamp": f"parse_timestamp(&self.{f.name})?"}[f.type])),
        "validation_consts": lines(lambda f: {
            "string": f"pub(crate) const {f.upper}_MAX: usize = {f.max_len};",
            "text": f"pub(crate) const {f.upper}_MAX: usize = {TEXT_MAX:_};",
            "int": f"pub(crate) const {f.upper}_MIN: i64 = {i64_literal(f.lo, 'min')};\n"
                   f"pub(crate) const {f.upper}_MAX: i64 = {i64_literal(f.hi, 'max')};",
        }.get(f.type)),
        "field_rules": lines(lambda f: {
            "string": f"\npub(crate) fn {f.name}(value: &str) -> Result<(), FieldError> {{\n"
                      f"    length(\"{f.name}\", value, {f.upper}_MAX)\n}}",
            "text": f"\npub(crate) fn {f.name}(value: &str) -> Result<(), FieldError> {{\n"
                    f"    at_most(\"{f.name}\", value, {f.upper}_MAX)\n}}",
            "int": f"\npub(crate) fn {f.name}(value: i64) -> Result<(), FieldError> {{\n"
                   f"    range(\"{f.name}\", value, {f.upper}_MIN, {f.upper}_MAX)\n}}",
        }.get(f.type)),
        "field_names": " ".join(f'"{f.name}",' for f in fields),
        "field_count": str(len(fields)),
        "create_field_count": str(len(fields) + 1),
        "payload_field_count": str(len(fields) + 5),
        "payload_takes": lines(lambda f: f"    let v_{f.name} = {take(f, 'self::')};"),
        "payload_build": lines(lambda f: f"        {f.name}: v_{f.name}.ok_or_else(lost)?,"),
        "request_takes": lines(lambda f: f"        let v_{f.name} = {take(f, 'validation::')}"
                                         f"{PARSED if f.type == 'timestamp' else ''};"),
        "input_build": lines(lambda f: f"            {f.name}: v_{f.name}.ok_or_else(lost)?,"),
        "input_fields": lines(lambda f: f"    pub {f.name}: {RUST_TYPE[f.type]},"),
        "input_checks": lines(lambda f: {
            "string": f"            validation::{f.name}(&self.{f.name}),",
            "text": f"            validation::{f.name}(&self.{f.name}),",
            "int": f"            validation::{f.name}(self.{f.name}),",
        }.get(f.type)),
        "row_from_input": lines(lambda f: f"            {f.name}: self.{f.name}"
                                          f"{'.trunc_subsecs(6)' if f.type == 'timestamp' else ''},"),
        "update_fields": lines(lambda f: f"    pub {f.name}: Option<{RUST_TYPE[f.type]}>,"),
        "update_checks": "\n".join({
            "string": f"            input.{f.name}.as_deref().map_or(Ok(()), validation::{f.name}),",
            "text": f"            input.{f.name}.as_deref().map_or(Ok(()), validation::{f.name}),",
            "int": f"            input.{f.name}.map_or(Ok(()), validation::{f.name}),",
        }[f.type] for f in checked),
        "update_apply": lines(lambda f: f"                if let Some(v) = input.{f.name} {{\n"
                                        f"                    row.{f.name} = v"
                                        f"{'.trunc_subsecs(6)' if f.type == 'timestamp' else ''};\n"
                                        "                }"),
        "update_takes": lines(lambda f: f"        let v_{f.name} = present(\"{f.name}\")\n"
                                        f"            .then(|| {take(f, 'validation::')})\n"
                                        f"            .flatten(){PARSED if f.type == 'timestamp' else ''};"),
        "update_build": lines(lambda f: f"            {f.name}: v_{f.name},"),
        "sqlite_columns": lines(lambda f: f"    {f.name} {sql_type(f, 'sqlite')} NOT NULL,"),
        "mysql_columns": lines(lambda f: f"    {f.name} {sql_type(f, 'mysql')} NOT NULL,"),
        "pg_columns": lines(lambda f: f"    {f.name} {sql_type(f, 'postgres')} NOT NULL,"),
        "pg_checks": pg_checks(fields, name),
        "sample_input": lines(lambda f: f"        {f.name}: {rust_value(f, samples(f)[0], name)},"),
        "changed_input": lines(lambda f: f"        {f.name}: Some({rust_value(f, samples(f)[1], name)}),"),
        "sample_json": lines(lambda f: f"        \"{f.name}\": {json.dumps(samples(f)[0], ensure_ascii=False)},"),
        "changed_json": lines(lambda f: f"        \"{f.name}\": {json.dumps(samples(f)[1], ensure_ascii=False)},"),
        "bad_field": bad_field(fields[0]),
        "column_count": str(len(fields) + 7),
        "column_names": lines(lambda f: f'    "{f.name}",'),
        "row_literals": lines(lambda f: "        {0},".format({
            "string": f"Literal::Text(&r.{f.name})", "text": f"Literal::Text(&r.{f.name})",
            "int": f"Literal::BigInt(r.{f.name})", "bool": f"Literal::Integer(i32::from(r.{f.name}))",
            "timestamp": f"Literal::Timestamp(r.{f.name})"}[f.type])),
        "pg_binds": lines(lambda f: "            .bind::<{0}, _>({1})".format(
            DIESEL_TYPE[f.type],
            f"r.{f.name}.clone()" if f.type in ("string", "text") else f"r.{f.name}")),
    }


# --- rendering ---------------------------------------------------------------------------------


def render(text: str, context: dict[str, str], types: set[str], origin: str) -> str:
    """Keep `//@if TYPE` … `//@end` blocks only when a field has TYPE; fill the placeholders."""
    out, keep = [], [True]
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("//@if "):
            keep.append(keep[-1] and stripped.split()[1] in types)
            continue
        if stripped == "//@end":
            keep.pop()
            continue
        if keep[-1]:
            out.append(line)
    if len(keep) != 1:
        raise SystemExit(f"template {origin}: unbalanced //@if … //@end")

    def fill(m: re.Match) -> str:
        key = m.group(1)
        if key not in context:
            raise SystemExit(f"template {origin}: unknown placeholder {{{{{key}}}}}")
        return context[key]

    return PLACEHOLDER.sub(fill, "".join(out))


def migration_versions(root: Path, today: str) -> tuple[str, str]:
    """Two versions after every existing migration: today's date (or the latest one used, when
    migrations are dated ahead), the next free block of 100 in HHMMSS."""
    existing = [p.name.split("_", 1)[0] for b in ("sqlite", "mysql", "postgres")
                for p in (root / "migrations" / b).iterdir() if p.is_dir()]
    dates = sorted({v[:10] for v in existing} | {today})
    date = dates[-1]
    used = [int(v[11:17]) for v in existing if v[:10] == date and v[11:17].isdigit()]
    block = (max(used, default=0) // 100 + 1) * 100
    if block + 1 > 235959:
        raise Refused(f"no free migration version left on {date}")
    return f"{date}-{block:06d}", f"{date}-{block + 1:06d}"


def edit_wiring(text: str, name: str) -> str:
    anchor = re.search(r"pub fn domains\(\) -> Vec<Domain> \{\n\s*vec!\[\n", text)
    if not anchor:
        raise Refused("crates/app/src/wiring.rs: `pub fn domains() -> Vec<Domain> { vec![` not found")
    end = text.find("\n    ]", anchor.end() - 1)
    if end < 0:
        raise Refused("crates/app/src/wiring.rs: the end of domains()'s vec![…] not found")
    return text[: end + 1] + f"        {name}::domain(),\n" + text[end + 1:]


def edit_root_manifest(text: str, name: str) -> str:
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == "[workspace.dependencies]")
    except StopIteration:
        raise Refused("Cargo.toml: no [workspace.dependencies]") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    anchors = [i for i in range(start, end)
               if re.match(r'^\w+ = \{ path = "(containers/\w+|ship)" \}', lines[i])]
    if not anchors:
        raise Refused("Cargo.toml: no `<member> = { path = … }` line in [workspace.dependencies]")
    at = anchors[-1] + 1
    return "".join(lines[:at] + [f'{name} = {{ path = "containers/{name}" }}\n'] + lines[at:])


def edit_app_manifest(text: str, name: str) -> str:
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == "[dependencies]")
    except StopIteration:
        raise Refused("crates/app/Cargo.toml: no [dependencies]") from None
    at = start + 1
    while at < len(lines) and lines[at].strip() and not lines[at].startswith("["):
        at += 1
    return "".join(lines[:at] + [f"{name} = {{ workspace = true }}\n"] + lines[at:])


def plan(root: Path, name: str, entity: str | None, fields: list[Field], today: str):
    """Every file to write and every file to change, in memory."""
    derived = singular(name)
    entity = entity or derived
    # `List<Entities>Action`: the container's name unless the entity is named otherwise.
    entities = name if entity == derived else plural(entity)
    v_create, v_sync = migration_versions(root, today)
    create_dir = f"{v_create}_{name}_create_{name}"
    sync_dir = f"{v_sync}_{name}_add_sync_columns"
    context = {
        "name": name, "Name": camel(name), "entity": entity, "Entity": camel(entity),
        "entities": entities, "Entities": camel(entities),
        "entity_words": entity.replace("_", " "), "entities_words": entities.replace("_", " "),
        "sync_migration": sync_dir,
    }
    if context["Entity"] == context["Name"] + "Error" or camel(entity) in {"Action", "Task"}:
        raise Refused(f"ENTITY `{entity}` clashes with a generated type name")
    context.update(fragments(name, fields))
    types = {f.type for f in fields}
    # `checked`: some field has a rule of its own (string, text, int); `unchecked`: none has.
    types.add("checked" if types & {"string", "text", "int"} else "unchecked")
    files: dict[Path, str] = {}
    for src in sorted(TEMPLATE.rglob("*.tmpl")):
        rel = src.relative_to(TEMPLATE)
        text = render(src.read_text(), context, types, str(rel))
        out = PLACEHOLDER.sub(lambda m: context[m.group(1)], str(rel))[: -len(".tmpl")]
        parts = Path(out).parts
        if parts[0] == "crate":
            dest = Path("containers", name, *parts[1:])
        else:  # migrations/<backend>/<create|sync_columns>/<up|down>.sql
            backend, which, leaf = parts[1], parts[2], parts[3]
            dest = Path("migrations", backend, create_dir if which == "create" else sync_dir, leaf)
        files[dest] = text
    edits = {
        Path("Cargo.toml"): edit_root_manifest((root / "Cargo.toml").read_text(), name),
        Path("crates/app/Cargo.toml"): edit_app_manifest(
            (root / "crates/app/Cargo.toml").read_text(), name),
        Path("crates/app/src/wiring.rs"): edit_wiring(
            (root / "crates/app/src/wiring.rs").read_text(), name),
    }
    for dest in files:
        if (root / dest).exists():
            raise Refused(f"{dest} exists already")
    return context, files, edits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate a sync-ready domain container (see the module docstring).")
    parser.add_argument("--name", default="", help="the container, crate, table and resource name")
    parser.add_argument("--entity", default="", help="the entity's singular name (default: NAME singularised)")
    parser.add_argument("--fields", default="", help='e.g. "sku:string:64 quantity:int:0.. active:bool"')
    parser.add_argument("--spec", default="", help="a TOML file with fields (and name, entity)")
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="the workspace (default: this one)")
    parser.add_argument("--dry-run", action="store_true", help="check and list, write nothing")
    parser.add_argument("--no-fmt", action="store_true", help="do not run rustfmt on the result")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    try:
        spec: dict = {}
        if args.spec:
            try:
                spec = tomllib.loads(Path(args.spec).read_text())
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise Refused(f"SPEC {args.spec}: {e}") from None
            unknown = set(spec) - {"name", "entity", "fields"}
            if unknown:
                raise Refused(f"SPEC {args.spec}: unknown keys {sorted(unknown)} (name, entity, fields)")
        name = args.name or str(spec.get("name", ""))
        if args.name and spec.get("name") and spec["name"] != args.name:
            raise Refused(f"NAME {args.name} and the spec's name {spec['name']} differ")
        check_name(name, root)
        entity = args.entity or str(spec.get("entity", "")) or None
        if entity:
            check_entity(entity)
        elif singular(name) in RUST_KEYWORDS or singular(name) in RESERVED_NAMES:
            raise Refused(f"the entity name `{singular(name)}` is reserved: pass ENTITY=…")
        specs: list = [s for s in re.split(r"[\s,]+", args.fields) if s]
        if not specs:
            specs = list(spec.get("fields", [])) or [f"name:string:{STRING_DEFAULT_MAX}"]
        fields = parse_fields(specs, name)
        today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        context, files, edits = plan(root, name, entity, fields, today)
    except Refused as e:
        print(f"new-container: refused: {e}", file=sys.stderr)
        return 2

    summary = ", ".join(f"{f.name}:{f.type}" for f in fields)
    print(f"container `{name}`: entity {context['Entity']} ({summary})")
    for dest in sorted(files):
        print(f"  {'would write' if args.dry_run else 'write'} {dest}")
    for dest in edits:
        print(f"  {'would edit' if args.dry_run else 'edit'}  {dest}")
    if args.dry_run:
        return 0
    for dest, text in files.items():
        path = root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for dest, text in edits.items():
        (root / dest).write_text(text)
    rust = [root / d for d in files if d.suffix == ".rs" and (
        d.name == "lib.rs" or (d.parent.name == "tests"))]
    if not args.no_fmt and shutil.which("rustfmt"):
        subprocess.run(["rustfmt", "--edition", "2021", *map(str, rust)], check=True, cwd=root)
    print(f"done: `cargo test -p {name}` runs its tests (add `-- --skip ::mysql` without MariaDB, `--skip ::postgres` without PostgreSQL); "
          "ARCHITECTURE.md, \"Adding a domain\", says what to do next.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

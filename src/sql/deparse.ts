import { Deparser, QuoteUtils } from 'pgsql-deparser';
import type { Node } from './ast.js';

type DeparserContext = Parameters<Deparser['A_Indirection']>[1];
type Indirection = Parameters<Deparser['A_Indirection']>[0];

/** The raw parse tree's SQL/JSON query function (JSON_VALUE, JSON_QUERY, JSON_EXISTS). */
interface JsonFuncExpr {
  op?: string;
  context_item?: unknown;
  pathspec?: unknown;
  passing?: unknown[];
  output?: unknown;
  on_empty?: JsonBehavior;
  on_error?: JsonBehavior;
  wrapper?: string;
  quotes?: string;
}

/** JSON_TABLE (PostgreSQL 17) in FROM, as the raw parse tree has it. */
interface JsonTableNode {
  context_item?: unknown;
  pathspec?: JsonTablePathSpec;
  passing?: unknown[];
  columns?: unknown[];
  on_error?: JsonBehavior;
  alias?: unknown;
  lateral?: boolean;
}

interface JsonTablePathSpec {
  string?: unknown;
  name?: string;
}

interface JsonTableColumn {
  coltype?: string;
  name?: string;
  typeName?: unknown;
  pathspec?: JsonTablePathSpec;
  format?: unknown;
  wrapper?: string;
  quotes?: string;
  columns?: unknown[];
  on_empty?: JsonBehavior;
  on_error?: JsonBehavior;
}

/** XMLTABLE in FROM. */
interface RangeTableFuncNode {
  lateral?: boolean;
  docexpr?: unknown;
  rowexpr?: unknown;
  namespaces?: unknown[];
  columns?: unknown[];
  alias?: unknown;
}

interface RangeTableFuncColNode {
  colname?: string;
  typeName?: unknown;
  for_ordinality?: boolean;
  is_not_null?: boolean;
  colexpr?: unknown;
  coldefexpr?: unknown;
}

interface SelectNode {
  limitOption?: string;
  limitCount?: unknown;
  limitOffset?: unknown;
  lockingClause?: unknown[];
}

interface TypeCastNode {
  arg?: unknown;
  typeName?: unknown;
}

interface XmlSerializeNode {
  indent?: boolean;
}

interface XmlExprNode {
  op?: string;
  args?: unknown[];
}

interface JsonBehavior {
  btype?: string;
  expr?: unknown;
}

/** Arguments the library already parenthesizes before a subscript or field selection. */
const wrapped = new Set([
  'TypeCast',
  'SubLink',
  'A_Expr',
  'FuncCall',
  'A_Indirection',
  'ColumnRef',
  'RowExpr',
]);

/** COPY's statement, as far as its options go. */
interface CopyStmtNode {
  options?: { DefElem?: { defname?: string; arg?: Record<string, unknown> } }[];
  whereClause?: unknown;
}

/** The old option syntax's words for options given as a string. */
const OLD_COPY_STRINGS: Readonly<Record<string, string>> = {
  delimiter: 'DELIMITER',
  null: 'NULL',
  quote: 'QUOTE',
  escape: 'ESCAPE',
  encoding: 'ENCODING',
};
const OLD_COPY_COLUMNS: Readonly<Record<string, string>> = {
  force_quote: 'FORCE QUOTE',
  force_not_null: 'FORCE NOT NULL',
  force_null: 'FORCE NULL',
};

/**
 * COPY options in the syntax before PostgreSQL 9.0 (copy_opt_list in gram.y), or undefined for an
 * option it cannot say: the faithfulness check would refuse what came out.
 */
function oldCopyOptions(options: NonNullable<CopyStmtNode['options']>): string | undefined {
  const words: string[] = [];
  for (const o of options) {
    const name = o.DefElem?.defname ?? '';
    const [type, value] = Object.entries(o.DefElem?.arg ?? {})[0] ?? [];
    const v = value as { sval?: string; boolval?: boolean; items?: { String?: { sval?: string } }[] };
    if (type === 'Boolean' && v.boolval === true && (name === 'header' || name === 'freeze'))
      words.push(name.toUpperCase());
    else if (name === 'format' && type === 'String' && (v.sval === 'csv' || v.sval === 'binary'))
      words.push(v.sval.toUpperCase());
    else if (OLD_COPY_STRINGS[name] && type === 'String')
      words.push(`${OLD_COPY_STRINGS[name]} ${QuoteUtils.escape(v.sval ?? '')}`);
    else if (OLD_COPY_COLUMNS[name] && type === 'A_Star') words.push(`${OLD_COPY_COLUMNS[name]} *`);
    else if (OLD_COPY_COLUMNS[name] && type === 'List' && v.items?.every((i) => i.String?.sval !== undefined))
      words.push(
        `${OLD_COPY_COLUMNS[name]} ${v.items.map((i) => QuoteUtils.quoteIdentifier(i.String!.sval!)).join(', ')}`,
      );
    else return undefined;
  }
  return `WITH ${words.join(' ')}`;
}

/**
 * pgsql-deparser, with repairs. It does not print the SQL/JSON query functions (JSON_VALUE,
 * JSON_QUERY, JSON_EXISTS) nor JSON_TABLE, and misprints XMLTABLE: printed here. It drops XMLSERIALIZE's INDENT and XMLPARSE's PRESERVE
 * WHITESPACE, which change the result. And it prints an indirection's argument bare unless it
 * is one of a few node types, so `(ARRAY[1, 2])[1]` came out as `ARRAY[1, 2][1]`, which does not
 * parse; PostgreSQL's grammar takes a subscript or a field only after a column, a parameter, a
 * subquery or a parenthesized expression, so every other argument gets parentheses here. Either
 * way a rewrite holding one was refused. Each method below says what else it repairs (qualified
 * casts, WITH TIES, CTE names, COPY's old option syntax).
 */
class Printer extends Deparser {
  override A_Indirection(node: Indirection, context: DeparserContext): string {
    const printed = super.A_Indirection(node, context);
    const type = Object.keys((node.arg ?? {}) as object)[0];
    if (type === undefined || wrapped.has(type)) return printed;
    const arg = this.visit(node.arg as never, context);
    return printed.startsWith(arg) ? `(${arg})${printed.slice(arg.length)}` : printed;
  }

  /**
   * The library prints `x::pg_catalog.text` as `x::text`, which the server reads as whatever `text`
   * names on the search path: a qualified type stays qualified.
   */
  override TypeCast(node: TypeCastNode, context: DeparserContext): string {
    const type = this.TypeName(node.typeName as never, context);
    if (type.startsWith('pg_catalog.')) return `CAST(${this.visit(node.arg as never, context)} AS ${type})`;
    return super.TypeCast(node as never, context);
  }

  /** The library prints FETCH FIRST n ROWS WITH TIES as LIMIT n, which returns other rows. */
  override SelectStmt(node: SelectNode, context: DeparserContext): string {
    if (node.limitOption !== 'LIMIT_OPTION_WITH_TIES' || node.limitCount === undefined)
      return super.SelectStmt(node as never, context);
    const { limitCount, limitOffset, lockingClause, ...rest } = node;
    const parts = [super.SelectStmt(rest as never, context)];
    if (limitOffset !== undefined) parts.push(`OFFSET (${this.visit(limitOffset as never, context)})`);
    parts.push(`FETCH FIRST (${this.visit(limitCount as never, context)}) ROWS WITH TIES`);
    for (const c of lockingClause ?? []) parts.push(this.visit(c as never, context));
    return parts.join(' ');
  }

  /** The library prints a CTE's name bare: `WITH "Orders" AS` came out as `WITH Orders AS`. */
  override CommonTableExpr(node: { ctename?: string }, context: DeparserContext): string {
    const printed = super.CommonTableExpr(node as never, context);
    const name = node.ctename;
    if (name === undefined || !printed.startsWith(name)) return printed;
    return QuoteUtils.quoteIdentifier(name) + printed.slice(name.length);
  }

  /**
   * COPY's options written the old way (`WITH CSV HEADER`, what psql's \copy sends) parse with
   * HEADER as a Boolean, which no option list `WITH (...)` gives: the library printed them as a
   * list, and every such COPY of a rewritten query was refused as unfaithful. Printed the old way.
   */
  override CopyStmt(copy: Parameters<Deparser['CopyStmt']>[0], context: DeparserContext): string {
    const node = copy as CopyStmtNode;
    const options = node.options ?? [];
    const booleans = options.some((o) => Object.keys(o.DefElem?.arg ?? {})[0] === 'Boolean');
    const old = booleans && node.whereClause === undefined ? oldCopyOptions(options) : undefined;
    if (old === undefined) return super.CopyStmt(copy, context);
    return `${super.CopyStmt({ ...copy, options: undefined }, context)} ${old}`;
  }

  /** The library drops INDENT. */
  override XmlSerialize(node: XmlSerializeNode, context: DeparserContext): string {
    const printed = super.XmlSerialize(node as never, context);
    return node.indent === true ? beforeClosing(printed, 'INDENT') : printed;
  }

  /** The library drops XMLPARSE's PRESERVE WHITESPACE (the second argument, true). */
  override XmlExpr(node: XmlExprNode, context: DeparserContext): string {
    const printed = super.XmlExpr(node as never, context);
    const preserve = (node.args?.[1] as { A_Const?: { boolval?: { boolval?: boolean } } } | undefined)
      ?.A_Const?.boolval?.boolval;
    return node.op === 'IS_XMLPARSE' && preserve === true
      ? beforeClosing(printed, 'PRESERVE WHITESPACE')
      : printed;
  }

  /**
   * JSON_VALUE, JSON_QUERY and JSON_EXISTS (PostgreSQL 17), which the library does not print: a
   * scoped statement holding one was refused. Printed in the grammar's order: context item, path,
   * PASSING, RETURNING, wrapper, quotes, ON EMPTY, ON ERROR.
   */
  JsonFuncExpr(node: JsonFuncExpr, context: DeparserContext): string {
    const names: Record<string, string> = {
      JSON_VALUE_OP: 'JSON_VALUE',
      JSON_QUERY_OP: 'JSON_QUERY',
      JSON_EXISTS_OP: 'JSON_EXISTS',
    };
    const name = names[node.op ?? ''];
    if (name === undefined) throw new Error(`Deparser does not handle ${node.op ?? 'this JSON function'}`);
    const parts = [
      `${this.JsonValueExpr(node.context_item as never, context)}, ${this.visit(node.pathspec as never, context)}`,
    ];
    parts.push(...this.jsonPassing(node.passing, context));
    const output = this.formatJsonOutput(node.output as never, context);
    if (output) parts.push(output);
    parts.push(...wrapperAndQuotes(node.wrapper, node.quotes));
    for (const [behavior, when] of [
      [node.on_empty, 'ON EMPTY'],
      [node.on_error, 'ON ERROR'],
    ] as const)
      if (behavior) parts.push(`${this.jsonBehavior(behavior, context)} ${when}`);
    return `${name}(${parts.join(' ')})`;
  }

  private jsonPassing(passing: readonly unknown[] | undefined, context: DeparserContext): string[] {
    const args = (passing ?? []).map((p) => {
      const a = (p as { JsonArgument?: { val: unknown; name: string } }).JsonArgument;
      if (!a) throw new Error('Deparser does not handle this PASSING argument');
      return `${this.JsonValueExpr(a.val as never, context)} AS ${QuoteUtils.quoteIdentifier(a.name)}`;
    });
    return args.length > 0 ? [`PASSING ${args.join(', ')}`] : [];
  }

  /**
   * JSON_TABLE (PostgreSQL 17), which the library does not print: a scoped statement holding one
   * was refused. Context item, path and its name, PASSING, COLUMNS, ON ERROR; then the alias.
   */
  JsonTable(node: JsonTableNode, context: DeparserContext): string {
    const parts = [
      `${this.JsonValueExpr(node.context_item as never, context)}, ${this.jsonTablePath(node.pathspec, context)}`,
      ...this.jsonPassing(node.passing, context),
      `COLUMNS (${this.jsonTableColumns(node.columns, context)})`,
    ];
    if (node.on_error) parts.push(`${this.jsonBehavior(node.on_error, context)} ON ERROR`);
    const table = `${node.lateral === true ? 'LATERAL ' : ''}JSON_TABLE(${parts.join(' ')})`;
    return node.alias ? `${table} ${this.Alias(node.alias as never, context)}` : table;
  }

  private jsonTablePath(spec: JsonTablePathSpec | undefined, context: DeparserContext): string {
    if (spec?.string === undefined)
      throw new Error('Deparser does not handle a JSON_TABLE path without text');
    const path = this.visit(spec.string as never, context);
    return spec.name === undefined ? path : `${path} AS ${QuoteUtils.quoteIdentifier(spec.name)}`;
  }

  private jsonTableColumns(columns: readonly unknown[] | undefined, context: DeparserContext): string {
    return (columns ?? [])
      .map((c) => {
        const col = (c as { JsonTableColumn?: JsonTableColumn }).JsonTableColumn;
        if (!col) throw new Error('Deparser does not handle this JSON_TABLE column');
        return this.jsonTableColumn(col, context);
      })
      .join(', ');
  }

  private jsonTableColumn(c: JsonTableColumn, context: DeparserContext): string {
    if (c.coltype === 'JTC_NESTED')
      return `NESTED PATH ${this.jsonTablePath(c.pathspec, context)} COLUMNS (${this.jsonTableColumns(c.columns, context)})`;
    const name = QuoteUtils.quoteIdentifier(c.name ?? '');
    if (c.coltype === 'JTC_FOR_ORDINALITY') return `${name} FOR ORDINALITY`;
    const parts = [name, this.TypeName(c.typeName as never, context)];
    const path = c.pathspec ? [`PATH ${this.jsonTablePath(c.pathspec, context)}`] : [];
    if (c.coltype === 'JTC_EXISTS') {
      parts.push('EXISTS', ...path);
      if (c.on_error) parts.push(`${this.jsonBehavior(c.on_error, context)} ON ERROR`);
      return parts.join(' ');
    }
    if (c.coltype === 'JTC_FORMATTED') parts.push(this.formatJsonFormat(c.format as never) ?? 'FORMAT JSON');
    else if (c.coltype !== 'JTC_REGULAR')
      throw new Error(`Deparser does not handle JSON_TABLE column ${c.coltype}`);
    parts.push(...path, ...wrapperAndQuotes(c.wrapper, c.quotes));
    if (c.on_empty) parts.push(`${this.jsonBehavior(c.on_empty, context)} ON EMPTY`);
    if (c.on_error) parts.push(`${this.jsonBehavior(c.on_error, context)} ON ERROR`);
    return parts.join(' ');
  }

  /**
   * XMLTABLE, which the library prints without its name, namespaces or parentheses (a rewrite
   * holding one was refused). Row and document expressions, paths and defaults are printed in
   * parentheses: the grammar takes only a simple expression there, and parentheses make any one
   * simple without changing the tree.
   */
  override RangeTableFunc(node: RangeTableFuncNode, context: DeparserContext): string {
    const expr = (e: unknown): string => `(${this.visit(e as never, context)})`;
    const namespaces = (node.namespaces ?? []).map((n) => {
      const t = (n as { ResTarget?: { name?: string; val?: unknown } }).ResTarget;
      if (!t?.val) throw new Error('Deparser does not handle this XML namespace');
      return t.name === undefined
        ? `DEFAULT ${expr(t.val)}`
        : `${expr(t.val)} AS ${QuoteUtils.quoteIdentifier(t.name)}`;
    });
    const columns = (node.columns ?? []).map((c) => {
      const col = (c as { RangeTableFuncCol?: RangeTableFuncColNode }).RangeTableFuncCol;
      if (!col?.colname) throw new Error('Deparser does not handle this XMLTABLE column');
      const name = QuoteUtils.quoteIdentifier(col.colname);
      if (col.for_ordinality === true) return `${name} FOR ORDINALITY`;
      const parts = [name, this.TypeName(col.typeName as never, context)];
      if (col.colexpr !== undefined) parts.push(`PATH ${expr(col.colexpr)}`);
      if (col.coldefexpr !== undefined) parts.push(`DEFAULT ${expr(col.coldefexpr)}`);
      if (col.is_not_null === true) parts.push('NOT NULL');
      return parts.join(' ');
    });
    if (node.rowexpr === undefined || node.docexpr === undefined || columns.length === 0)
      throw new Error('Deparser does not handle this XMLTABLE');
    const head = namespaces.length > 0 ? `XMLNAMESPACES(${namespaces.join(', ')}), ` : '';
    const table = `${node.lateral === true ? 'LATERAL ' : ''}XMLTABLE(${head}${expr(node.rowexpr)} PASSING ${expr(node.docexpr)} COLUMNS ${columns.join(', ')})`;
    return node.alias ? `${table} ${this.Alias(node.alias as never, context)}` : table;
  }

  private jsonBehavior(b: JsonBehavior, context: DeparserContext): string {
    const fixed: Record<string, string> = {
      JSON_BEHAVIOR_NULL: 'NULL',
      JSON_BEHAVIOR_ERROR: 'ERROR',
      JSON_BEHAVIOR_EMPTY: 'EMPTY',
      JSON_BEHAVIOR_TRUE: 'TRUE',
      JSON_BEHAVIOR_FALSE: 'FALSE',
      JSON_BEHAVIOR_UNKNOWN: 'UNKNOWN',
      JSON_BEHAVIOR_EMPTY_ARRAY: 'EMPTY ARRAY',
      JSON_BEHAVIOR_EMPTY_OBJECT: 'EMPTY OBJECT',
    };
    if (b.btype === 'JSON_BEHAVIOR_DEFAULT') return `DEFAULT ${this.visit(b.expr as never, context)}`;
    const word = fixed[b.btype ?? ''];
    if (word === undefined) throw new Error(`Deparser does not handle JSON behavior ${b.btype}`);
    return word;
  }
}

/**
 * `words` before the closing parenthesis of what the library printed. When the print has another
 * shape, the words would be lost and the statement would mean something else: refuse to print.
 */
function beforeClosing(printed: string, words: string): string {
  const m = /^(.*?) ?\)$/s.exec(printed);
  if (!m) throw new Error(`Deparser does not handle ${words} here`);
  return `${m[1]} ${words})`;
}

/** The wrapper and quotes clauses of JSON_QUERY and of a JSON_TABLE column. */
function wrapperAndQuotes(wrapper: string | undefined, quotes: string | undefined): string[] {
  return [
    ...clause(wrapper, 'wrapper', {
      JSW_UNSPEC: '',
      JSW_NONE: 'WITHOUT WRAPPER',
      JSW_CONDITIONAL: 'WITH CONDITIONAL WRAPPER',
      JSW_UNCONDITIONAL: 'WITH UNCONDITIONAL WRAPPER',
    }),
    ...clause(quotes, 'quotes', {
      JS_QUOTES_UNSPEC: '',
      JS_QUOTES_KEEP: 'KEEP QUOTES',
      JS_QUOTES_OMIT: 'OMIT QUOTES',
    }),
  ];
}

/** The words of an enumerated option, none for the unspecified one; an unknown value is refused. */
function clause(value: string | undefined, what: string, words: Readonly<Record<string, string>>): string[] {
  if (value === undefined) return [];
  const word = words[value];
  if (word === undefined) throw new Error(`Deparser does not handle JSON ${what} ${value}`);
  return word === '' ? [] : [word];
}

/** Turns statements back into one line of SQL (statements separated by "; "). */
export function deparseStatements(stmts: readonly Node[]): string {
  return stmts.map((s) => new Printer(s as never, { pretty: false }).deparseQuery()).join('; ');
}

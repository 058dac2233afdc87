/**
 * CSV as RFC 4180 writes it: fields may be quoted, quoted fields may hold commas, doubled quotes and
 * line breaks. Trace files are written by other tools, so the parser accepts CRLF and a BOM too.
 */

export class CsvError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

export interface CsvRow {
  fields: string[];
  /** 1-based line where the row starts, for error messages. */
  line: number;
}

export function parseCsv(text: string): CsvRow[] {
  const rows: CsvRow[] = [];
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let fields: string[] = [];
  let rowLine = 1;
  const quote = 34;
  const comma = 44;
  const lf = 10;
  const cr = 13;

  const endRow = () => {
    // A blank line is no row (a trailing newline, or blank lines between rows).
    if (!(fields.length === 1 && fields[0] === "")) rows.push({ fields, line: rowLine });
    fields = [];
  };

  while (i <= n) {
    // Fast path: a whole line without quotes (or a lone CR) is split as is.
    if (fields.length === 0 && i < n) {
      let end = text.indexOf("\n", i);
      if (end < 0) end = n;
      const stop = end > i && text.charCodeAt(end - 1) === cr ? end - 1 : end;
      let plain = true;
      for (let k = i; k < stop; k++) {
        const c = text.charCodeAt(k);
        if (c === quote || c === cr) {
          plain = false;
          break;
        }
      }
      if (plain) {
        if (stop > i) rows.push({ fields: text.slice(i, stop).split(","), line });
        i = end + 1;
        line++;
        continue;
      }
    }
    if (i === n) {
      if (fields.length > 0) endRow();
      break;
    }
    let value: string;
    if (fields.length === 0) rowLine = line;
    if (text.charCodeAt(i) === quote) {
      const fieldLine = line;
      let parts = "";
      let start = i + 1;
      let j = start;
      for (;;) {
        const next = text.indexOf('"', j);
        if (next < 0) throw new CsvError("unterminated quoted field", fieldLine);
        if (text.charCodeAt(next + 1) === quote) {
          parts += text.slice(start, next + 1);
          j = next + 2;
          start = j;
          continue;
        }
        parts += text.slice(start, next);
        for (let k = i; k < next; k++) if (text.charCodeAt(k) === lf) line++;
        i = next + 1;
        break;
      }
      value = parts;
      const after = i < n ? text.charCodeAt(i) : lf;
      if (after !== comma && after !== lf && after !== cr) {
        throw new CsvError("unexpected character after a quoted field", line);
      }
    } else {
      let j = i;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === comma || c === lf || c === cr) break;
        if (c === quote) throw new CsvError("quote inside an unquoted field", line);
        j++;
      }
      value = text.slice(i, j);
      i = j;
    }
    fields.push(value);
    if (i >= n) {
      endRow();
      break;
    }
    const c = text.charCodeAt(i);
    if (c === comma) {
      i++;
      // A trailing comma means one more, empty field.
      if (i === n) fields.push("");
      continue;
    }
    // End of row: LF, CRLF or a lone CR.
    if (c === cr && text.charCodeAt(i + 1) === lf) i++;
    i++;
    line++;
    endRow();
  }
  return rows;
}

/**
 * Builds elements from data. Text goes in as text nodes and values as attributes, never as markup,
 * so nothing the API sends can become HTML.
 */

export type Child = Node | string | number | null | undefined | false;
export type Attrs = Record<string, string | number | boolean | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(parent: Node, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** Text only for screen readers. */
export const hidden = (text: string) => h("span", { class: "visually-hidden" }, text);

export interface Column<T> {
  label: string;
  cell: (row: T) => Child | Child[];
  /** Right-aligned numbers with tabular figures. */
  numeric?: boolean;
}

/**
 * A table that narrow screens show as one card per row. The explicit roles keep it a table for
 * screen readers when CSS changes its display; each cell carries its header for the card layout.
 */
export function table<T>(options: {
  labelledBy: string;
  testId: string;
  columns: Column<T>[];
  rows: T[];
  row: (item: T) => Attrs;
}): HTMLTableElement {
  const { columns } = options;
  return h(
    "table",
    { class: "stack", role: "table", "aria-labelledby": options.labelledBy, "data-testid": options.testId },
    h(
      "thead",
      { role: "rowgroup" },
      h(
        "tr",
        { role: "row" },
        columns.map((column) =>
          h("th", { scope: "col", role: "columnheader", class: column.numeric ? "num" : null }, column.label),
        ),
      ),
    ),
    h(
      "tbody",
      { role: "rowgroup" },
      options.rows.map((item) =>
        h(
          "tr",
          { role: "row", ...options.row(item) },
          columns.map((column) =>
            h(
              "td",
              { role: "cell", "data-label": column.label, class: column.numeric ? "num" : null },
              column.cell(item),
            ),
          ),
        ),
      ),
    ),
  );
}

/**
 * Re-renders without losing the reader's place: the element that had focus is found again by its
 * `data-focus-key`, so a keyboard user is not thrown back to the top every refresh.
 */
export function keepingFocus(render: () => void): void {
  const active = document.activeElement;
  const key = active instanceof HTMLElement ? active.dataset.focusKey : undefined;
  render();
  if (key === undefined || document.activeElement === active) return;
  const again = document.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(key)}"]`);
  again?.focus({ preventScroll: true });
}

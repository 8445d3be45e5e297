// The models page's logic: filter, sort and the cost of a prompt, on catalogue entries as
// GET /api/models returns them.

import type { ModelEntry } from "./api";

export interface ModelFilter {
  text?: string;
  capability?: string;
  tag?: string;
  provider?: string;
  maxInputPrice?: number | null;
  minContext?: number | null;
}

export type SortKey =
  | "id"
  | "provider"
  | "context_window"
  | "input_price"
  | "output_price"
  | "quality"
  | "price_date";

export function filterModels(entries: ModelEntry[], f: ModelFilter): ModelEntry[] {
  const text = (f.text ?? "").trim().toLowerCase();
  return entries.filter(
    (e) =>
      (!text ||
        e.id.toLowerCase().includes(text) ||
        (e.aliases ?? []).some((a) => a.toLowerCase().includes(text))) &&
      (!f.capability || e.capabilities.includes(f.capability)) &&
      (!f.tag || e.tags.includes(f.tag)) &&
      (!f.provider || e.provider === f.provider) &&
      (f.maxInputPrice === null ||
        f.maxInputPrice === undefined ||
        (e.input_price !== null && e.input_price <= f.maxInputPrice)) &&
      (f.minContext === null ||
        f.minContext === undefined ||
        (e.context_window !== null && e.context_window >= f.minContext)),
  );
}

/** Sorted copy; unknown values (null) always last, whatever the direction. */
export function sortModels(entries: ModelEntry[], key: SortKey, descending = false): ModelEntry[] {
  const sign = descending ? -1 : 1;
  return [...entries].sort((a, b) => {
    const x = a[key] ?? null;
    const y = b[key] ?? null;
    if (x === null && y === null) return a.id.localeCompare(b.id);
    if (x === null) return 1;
    if (y === null) return -1;
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return c === 0 ? a.id.localeCompare(b.id) : sign * c;
  });
}

/** USD for `input` prompt tokens and `output` completion tokens; null when a price is unknown. */
export function promptCost(e: ModelEntry, input: number, output: number): number | null {
  if (e.input_price === null || e.output_price === null) return null;
  return (input * e.input_price + output * e.output_price) / 1_000_000;
}

/** The distinct values of one list field, sorted, for a filter's choices. */
export function choices(entries: ModelEntry[], pick: (e: ModelEntry) => string[]): string[] {
  return [...new Set(entries.flatMap(pick))].sort();
}

/** Toggle `id` in a selection of at most `max` (the oldest choice leaves when full). */
export function toggleSelection(selected: string[], id: string, max = 4): string[] {
  if (selected.includes(id)) return selected.filter((s) => s !== id);
  const next = [...selected, id];
  return next.length > max ? next.slice(next.length - max) : next;
}

/** Whether a gateway key's allowed-model pattern admits `model`: the server's
 * `fnmatch.fnmatchcase` (`*`, `?`, `[seq]`, `[!seq]`), case-sensitive. */
export function globMatch(pattern: string, model: string): boolean {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        let body = pattern.slice(i + 1, end).replace(/\\/g, "\\\\");
        if (body.startsWith("!")) body = "^" + body.slice(1);
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s").test(model);
}

export function allowedBy(patterns: string[] | null, model: string): boolean {
  return patterns === null || patterns.some((p) => globMatch(p, model));
}

// Models: the catalogue (GET /api/models) as a sortable, filterable table; pick 2-4 to
// compare prices, context, capabilities and the cost of a prompt of N in / M out tokens.

import { useState } from "preact/hooks";
import { getJson, type ModelEntry } from "../api";
import { choices, filterModels, promptCost, sortModels, toggleSelection, type SortKey } from "../catalogue";
import { perMillion, tokens, usd } from "../format";
import { useLoad } from "../hooks";

const COLUMNS: { key: SortKey; title: string }[] = [
  { key: "id", title: "Model" },
  { key: "provider", title: "Provider" },
  { key: "context_window", title: "Context" },
  { key: "input_price", title: "Input" },
  { key: "output_price", title: "Output" },
  { key: "quality", title: "Quality" },
  { key: "price_date", title: "Price date" },
];

function Price({ e, value }: { e: ModelEntry; value: number | null }) {
  return (
    <>
      {perMillion(value)}
      {e.price_verified === false && value !== null && <span class="badge warn"> unverified</span>}
    </>
  );
}

export function Models() {
  const cat = useLoad((s) => getJson<{ data: ModelEntry[] }>("/api/models", s), []);
  const [text, setText] = useState("");
  const [capability, setCapability] = useState("");
  const [tag, setTag] = useState("");
  const [provider, setProvider] = useState("");
  const [maxPrice, setMaxPrice] = useState("");
  const [minContext, setMinContext] = useState("");
  const [sort, setSort] = useState<SortKey>("id");
  const [desc, setDesc] = useState(false);
  const [selected, setSelected] = useState<string[]>([]);
  const [nIn, setNIn] = useState("1000");
  const [nOut, setNOut] = useState("500");

  const all = cat.data?.data ?? [];
  const rows = sortModels(
    filterModels(all, {
      text,
      capability,
      tag,
      provider,
      maxInputPrice: maxPrice === "" ? null : Number(maxPrice),
      minContext: minContext === "" ? null : Number(minContext),
    }),
    sort,
    desc,
  );
  const picked = selected.map((id) => all.find((e) => e.id === id)).filter((e): e is ModelEntry => !!e);

  return (
    <section>
      <h1>Models</h1>
      {cat.error && <p role="alert" class="error">{cat.error}</p>}
      <form class="filters grid" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>Search<input value={text} onInput={(e) => setText(e.currentTarget.value)} placeholder="id or alias" /></label>
        <label>
          Capability
          <select value={capability} onChange={(e) => setCapability(e.currentTarget.value)}>
            <option value="">any</option>
            {choices(all, (e) => e.capabilities).map((c) => <option value={c}>{c}</option>)}
          </select>
        </label>
        <label>
          Tag
          <select value={tag} onChange={(e) => setTag(e.currentTarget.value)}>
            <option value="">any</option>
            {choices(all, (e) => e.tags).map((c) => <option value={c}>{c}</option>)}
          </select>
        </label>
        <label>
          Provider
          <select value={provider} onChange={(e) => setProvider(e.currentTarget.value)}>
            <option value="">any</option>
            {choices(all, (e) => [e.provider]).map((c) => <option value={c}>{c}</option>)}
          </select>
        </label>
        <label>Max input $/M<input type="number" min="0" step="any" value={maxPrice} onInput={(e) => setMaxPrice(e.currentTarget.value)} /></label>
        <label>Min context<input type="number" min="0" value={minContext} onInput={(e) => setMinContext(e.currentTarget.value)} /></label>
      </form>
      <p>
        {rows.length} of {all.length} models. Select 2 to 4 to compare ({selected.length} selected).
      </p>
      <div class="scroll">
        <table class="models">
          <thead>
            <tr>
              <th scope="col">Compare</th>
              {COLUMNS.map((c) => (
                <th scope="col" aria-sort={sort === c.key ? (desc ? "descending" : "ascending") : undefined}>
                  <button
                    type="button"
                    class="sort"
                    onClick={() => {
                      if (sort === c.key) setDesc(!desc);
                      else {
                        setSort(c.key);
                        setDesc(false);
                      }
                    }}
                  >
                    {c.title}
                    {sort === c.key ? (desc ? " ↓" : " ↑") : ""}
                  </button>
                </th>
              ))}
              <th scope="col">Capabilities</th>
              <th scope="col">Price source</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`compare ${e.id}`}
                    checked={selected.includes(e.id)}
                    onChange={() => setSelected(toggleSelection(selected, e.id))}
                  />
                </td>
                <td>{e.id}</td>
                <td>{e.provider}</td>
                <td>{tokens(e.context_window)}</td>
                <td><Price e={e} value={e.input_price} /></td>
                <td><Price e={e} value={e.output_price} /></td>
                <td>{e.quality ?? "—"}</td>
                <td>{e.price_date ?? "—"}</td>
                <td>{e.capabilities.join(", ") || "—"}</td>
                <td>{e.price_source ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {picked.length >= 2 && (
        <section aria-label="Comparison">
          <h2>Compare</h2>
          <div class="grid">
            <label>Input tokens<input type="number" min="0" value={nIn} onInput={(e) => setNIn(e.currentTarget.value)} /></label>
            <label>Output tokens<input type="number" min="0" value={nOut} onInput={(e) => setNOut(e.currentTarget.value)} /></label>
          </div>
          <div class="scroll">
            <table class="compare">
              <thead>
                <tr>
                  <th scope="col"></th>
                  {picked.map((e) => <th scope="col">{e.id}</th>)}
                </tr>
              </thead>
              <tbody>
                <tr><th scope="row">Input price</th>{picked.map((e) => <td><Price e={e} value={e.input_price} /></td>)}</tr>
                <tr><th scope="row">Output price</th>{picked.map((e) => <td><Price e={e} value={e.output_price} /></td>)}</tr>
                <tr><th scope="row">Context</th>{picked.map((e) => <td>{tokens(e.context_window)}</td>)}</tr>
                <tr><th scope="row">Max output</th>{picked.map((e) => <td>{tokens(e.max_output)}</td>)}</tr>
                <tr><th scope="row">Capabilities</th>{picked.map((e) => <td>{e.capabilities.join(", ") || "—"}</td>)}</tr>
                <tr>
                  <th scope="row">Cost of this prompt</th>
                  {picked.map((e) => <td data-field="prompt-cost">{usd(promptCost(e, Number(nIn) || 0, Number(nOut) || 0))}</td>)}
                </tr>
                <tr><th scope="row">Price source</th>{picked.map((e) => <td>{e.price_source ?? "—"} {e.price_date ?? ""}</td>)}</tr>
              </tbody>
            </table>
          </div>
        </section>
      )}
    </section>
  );
}

// Requests: the request log newest first (GET /api/requests), filtered and paged by cursor;
// one request's detail (GET /api/requests/{id}), with its prompt and answer text when the
// server keeps them (request_log.store_content; off by default).

import { useState } from "preact/hooks";
import { getJson, query, type LogRecord, type Page } from "../api";
import { count, seconds, usd, when } from "../format";
import { useLoad } from "../hooks";

export interface LogFilter {
  since: string;
  key_id: string;
  route: string;
  provider: string;
  model: string;
  status: string;
  error: string;
  message: string;
}

const EMPTY: LogFilter = { since: "24h", key_id: "", route: "", provider: "", model: "", status: "", error: "", message: "" };

function Detail({ id, onClose }: { id: number; onClose: () => void }) {
  const rec = useLoad((s) => getJson<LogRecord>(`/api/requests/${id}`, s), [id]);
  const r = rec.data;
  return (
    <section class="detail" aria-label={`Request ${id}`}>
      <div class="row spread">
        <h2>Request {id}</h2>
        <button type="button" onClick={onClose}>Close</button>
      </div>
      {rec.error && <p role="alert" class="error">{rec.error}</p>}
      {r && (
        <dl class="figures">
          <div><dt>Time</dt><dd>{when(r.ts)}</dd></div>
          <div><dt>Request id</dt><dd>{r.request_id ?? "—"}</dd></div>
          <div><dt>Key</dt><dd>{r.key_id ?? "master / open"}</dd></div>
          <div><dt>Route</dt><dd>{r.route ?? "—"}</dd></div>
          <div><dt>Strategy</dt><dd>{r.strategy ?? "—"}</dd></div>
          <div><dt>Deployment</dt><dd>{r.deployment ?? "—"}</dd></div>
          <div><dt>Status</dt><dd>{r.status}{r.error ? ` ${r.error}` : ""}</dd></div>
          {r.error_message && <div><dt>Error message</dt><dd>{r.error_message}</dd></div>}
          <div><dt>Attempts</dt><dd>{r.attempts}</dd></div>
          <div><dt>Stream</dt><dd>{r.stream ? "yes" : "no"}</dd></div>
          <div><dt>TTFT</dt><dd>{seconds(r.ttft)}</dd></div>
          <div><dt>Latency</dt><dd>{seconds(r.latency)}</dd></div>
          <div><dt>Tokens in / out / cached</dt><dd>{r.input_tokens} / {r.output_tokens} / {r.cached_tokens}</dd></div>
          <div><dt>Cost</dt><dd>{usd(r.cost)}</dd></div>
        </dl>
      )}
      {r && (r.prompt || r.answer) && (
        <dl class="content">
          {r.prompt && <div><dt>Prompt</dt><dd><pre>{r.prompt}</pre></dd></div>}
          {r.answer && <div><dt>Answer</dt><dd><pre>{r.answer}</pre></dd></div>}
        </dl>
      )}
      {r && (r.failed_attempts ?? []).length > 0 && (
        <>
          <h3>Other calls of this request</h3>
          <ol class="attempts">
            {(r.failed_attempts ?? []).map((a) => (
              <li data-attempt={a.attempt ?? undefined}>
                {a.deployment}
                {a.strategy === "judge" ? " (cascade judge)" : ""}: {a.status} {a.error ?? "ok"} after{" "}
                {seconds(a.latency)}
                {a.cost !== null ? `, ${usd(a.cost)}` : ""}
                {a.error_message ? `: ${a.error_message}` : ""}
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}

export function Requests() {
  const [draft, setDraft] = useState<LogFilter>(EMPTY);
  const [filter, setFilter] = useState<LogFilter>(EMPTY);
  const [cursors, setCursors] = useState<string[]>([]);
  const [open, setOpen] = useState<number | null>(null);
  const cursor = cursors[cursors.length - 1] ?? null;
  const page = useLoad(
    (s) => getJson<Page<LogRecord>>(`/api/requests${query({ ...filter, limit: 50, cursor })}`, s),
    [filter, cursor],
  );
  const field = (name: keyof LogFilter, label: string, placeholder = "") => (
    <label>
      {label}
      <input name={name} value={draft[name]} placeholder={placeholder} onInput={(e) => setDraft({ ...draft, [name]: e.currentTarget.value })} />
    </label>
  );
  return (
    <section>
      <h1>Requests</h1>
      <form
        class="filters grid"
        aria-label="Filters"
        onSubmit={(e) => {
          e.preventDefault();
          setCursors([]);
          setFilter(draft);
        }}
      >
        <label>
          Since
          <select value={draft.since} onChange={(e) => setDraft({ ...draft, since: e.currentTarget.value })}>
            <option value="15m">15 min</option>
            <option value="1h">1 hour</option>
            <option value="24h">24 hours</option>
            <option value="7d">7 days</option>
            <option value="30d">30 days</option>
          </select>
        </label>
        <label>
          Status
          <select name="status" value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value })}>
            <option value="">any</option>
            <option value="ok">success</option>
            <option value="error">error</option>
            <option value="429">429</option>
            <option value="499">499 (client gone)</option>
            <option value="502">502</option>
            <option value="503">503</option>
          </select>
        </label>
        {field("route", "Route or model asked for")}
        {field("provider", "Provider")}
        {field("model", "Upstream model")}
        {field("key_id", "Gateway key id", "key_...")}
        {field("error", "Error class contains", "e.g. Timeout")}
        {field("message", "Error message contains", "e.g. quota")}
        <div class="row">
          <button type="submit" class="primary">Filter</button>
          <button type="button" onClick={() => { setDraft(EMPTY); setFilter(EMPTY); setCursors([]); }}>Reset</button>
        </div>
      </form>
      {page.error && <p role="alert" class="error">{page.error}</p>}
      <div class="scroll">
        <table class="cards log">
          <thead>
            <tr><th>Time</th><th>Route</th><th>Deployment</th><th>Status</th><th>Attempts</th><th>TTFT</th><th>Latency</th><th>Tokens</th><th>Cost</th><th></th></tr>
          </thead>
          <tbody>
            {(page.data?.data ?? []).map((r) => (
              <tr data-status={r.status}>
                <td data-label="Time">{when(r.ts)}</td>
                <td data-label="Route">{r.route ?? "—"}</td>
                <td data-label="Deployment">{r.deployment ?? "—"}</td>
                <td data-label="Status">
                  <span class={`status ${r.status < 400 ? "s-valid" : "s-invalid"}`}>
                    {r.status}{r.error ? ` ${r.error}` : " ok"}
                  </span>
                </td>
                <td data-label="Attempts">{r.attempts}</td>
                <td data-label="TTFT">{seconds(r.ttft)}</td>
                <td data-label="Latency">{seconds(r.latency)}</td>
                <td data-label="Tokens">{count(r.input_tokens)} → {count(r.output_tokens)}</td>
                <td data-label="Cost">{usd(r.cost)}</td>
                <td><button type="button" onClick={() => setOpen(r.id)}>Details</button></td>
              </tr>
            ))}
          </tbody>
        </table>
        {page.data && page.data.data.length === 0 && <p>No request matches.</p>}
      </div>
      <div class="row">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>Newer</button>
        <button
          type="button"
          disabled={!page.data?.next_cursor}
          onClick={() => page.data?.next_cursor && setCursors([...cursors, page.data.next_cursor])}
        >
          Older
        </button>
      </div>
      {open !== null && <Detail id={open} onClose={() => setOpen(null)} />}
    </section>
  );
}

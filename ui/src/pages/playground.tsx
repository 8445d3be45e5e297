// Playground: one prompt to one model, or the same prompt to 2-4 models side by side
// (compare mode), with each answer's live figures from the gateway's headers and stream.

import { useState } from "preact/hooks";
import { getJson, sendJson, type ModelEntry, type OpenAIModel, type Session } from "../api";
import { allowedBy } from "../catalogue";
import {
  feedbackBody,
  figures,
  runChat,
  type Attachment,
  type FeedbackResult,
  type Run,
  type RunOptions,
} from "../chat";
import { count, rate, seconds, usd } from "../format";
import { useLoad, useNow } from "../hooks";

interface Choice {
  id: string;
  label: string;
}

async function loadChoices(session: Session, signal: AbortSignal): Promise<Choice[]> {
  const models = await getJson<{ data: OpenAIModel[] }>("/v1/models", signal);
  let prices = new Map<string, ModelEntry>();
  if (session.role === "admin") {
    const cat = await getJson<{ data: ModelEntry[] }>("/api/models", signal);
    prices = new Map(cat.data.map((e) => [e.id, e]));
  }
  const allowed = session.key?.models ?? null;
  return models.data
    .filter((m) => allowedBy(allowed, m.id))
    .map((m) => {
      const e = prices.get(m.id);
      const price = e && e.input_price !== null ? ` · $${e.input_price}/$${e.output_price} per M` : "";
      return { id: m.id, label: `${m.id} (${m.owned_by})${price}` };
    });
}

function RunFigures({ run }: { run: Run }) {
  const now = useNow(run.status === "running");
  const f = figures(run, now);
  const failed = run.attempts !== null && run.attempts > 1 ? run.attempts - 1 : 0;
  return (
    <dl class="figures" aria-label={`Figures for ${run.model}`}>
      <div><dt>Status</dt><dd data-field="status">{run.status}</dd></div>
      <div><dt>Provider</dt><dd data-field="provider">{run.provider ?? "—"}</dd></div>
      <div><dt>Deployment</dt><dd data-field="deployment">{run.deployment ?? "—"}</dd></div>
      <div><dt>Strategy</dt><dd data-field="strategy">{run.strategy ?? "—"}</dd></div>
      <div>
        <dt>Attempts</dt>
        <dd data-field="attempts">
          {run.attempts ?? "—"}
          {failed > 0 && ` (${failed} failed, failed over)`}
        </dd>
      </div>
      <div><dt>TTFT</dt><dd data-field="ttft">{seconds(f.ttft)}</dd></div>
      <div><dt>Elapsed</dt><dd data-field="elapsed">{seconds(f.elapsed)}</dd></div>
      <div>
        <dt>Tokens</dt>
        <dd data-field="tokens">
          {f.estimated && run.status === "running" ? "~" : ""}
          {count(f.tokens)}
        </dd>
      </div>
      <div><dt>Speed</dt><dd data-field="speed">{rate(f.tokensPerSecond)}</dd></div>
      <div><dt>Cost</dt><dd data-field="cost">{usd(run.cost)}</dd></div>
    </dl>
  );
}

interface Thumb {
  up: boolean;
  state: "sending" | "stored" | "error";
  message: string;
}

/** Thumbs up or down on a finished answer: POST /api/feedback with the request's id. A
 * second click replaces the first score (the endpoint keeps one per key and request). */
function Thumbs({ requestId }: { requestId: string }) {
  const [thumb, setThumb] = useState<Thumb | null>(null);

  async function send(up: boolean) {
    setThumb({ up, state: "sending", message: "Sending…" });
    try {
      const r = await sendJson<FeedbackResult>("POST", "/api/feedback", feedbackBody(requestId, up));
      const on = r.deployment ? ` for ${r.deployment}` : "";
      setThumb({ up, state: "stored", message: `Feedback stored: score ${r.score}${on}` });
    } catch (err) {
      setThumb({ up, state: "error", message: `Feedback not stored: ${(err as Error).message}` });
    }
  }

  const busy = thumb?.state === "sending";
  return (
    <div class="thumbs row" role="group" aria-label="Rate this answer">
      <button
        type="button"
        aria-label="Thumbs up"
        aria-pressed={thumb?.up === true && thumb.state === "stored"}
        disabled={busy}
        onClick={() => void send(true)}
      >
        👍
      </button>
      <button
        type="button"
        aria-label="Thumbs down"
        aria-pressed={thumb?.up === false && thumb.state === "stored"}
        disabled={busy}
        onClick={() => void send(false)}
      >
        👎
      </button>
      {thumb && (
        <span
          data-field="feedback"
          role={thumb.state === "error" ? "alert" : "status"}
          class={thumb.state === "error" ? "error" : ""}
        >
          {thumb.message}
        </span>
      )}
    </div>
  );
}

function Answer({ run }: { run: Run }) {
  return (
    <article class="answer" aria-live="polite" aria-busy={run.status === "running"}>
      <RunFigures run={run} />
      {run.error && (
        <p role="alert" class="error">
          Error: {run.error}
        </p>
      )}
      <pre class="text" data-field="text">{run.text}</pre>
      {run.status === "done" && run.requestId && <Thumbs key={run.requestId} requestId={run.requestId} />}
    </article>
  );
}

async function readFiles(list: FileList | null): Promise<Attachment[]> {
  return Promise.all([...(list ?? [])].map(async (f) => ({ name: f.name, text: await f.text() })));
}

export function Playground({ session }: { session: Session }) {
  const choices = useLoad((s) => loadChoices(session, s), []);
  const [compare, setCompare] = useState(false);
  const [models, setModels] = useState<string[]>(["", ""]);
  const [strategy, setStrategy] = useState("");
  const [priority, setPriority] = useState("");
  const [system, setSystem] = useState("");
  const [message, setMessage] = useState("");
  const [maxTokens, setMaxTokens] = useState("64");
  const [temperature, setTemperature] = useState("");
  const [stream, setStream] = useState(true);
  const [files, setFiles] = useState<Attachment[]>([]);
  const [runs, setRuns] = useState<(Run | null)[]>([]);

  const active = compare ? models : models.slice(0, 1);
  const busy = runs.some((r) => r?.status === "running");

  function start(e: Event) {
    e.preventDefault();
    const chosen = active.map((m) => m.trim());
    setRuns(chosen.map(() => null));
    chosen.forEach((model, i) => {
      const o: RunOptions = {
        model,
        message,
        system: system || undefined,
        maxTokens: maxTokens ? Number(maxTokens) : null,
        temperature: temperature === "" ? null : Number(temperature),
        stream,
        strategy: strategy || undefined,
        priority: priority || undefined,
        files,
      };
      void runChat(o, (run) => setRuns((all) => all.map((r, j) => (j === i ? run : r))));
    });
  }

  const now = useNow(busy);
  return (
    <section>
      <h1>Playground</h1>
      <form class="playground" onSubmit={start}>
        <datalist id="model-choices">
          {(choices.data ?? []).map((c) => (
            <option value={c.id} label={c.label} />
          ))}
        </datalist>
        {choices.error && <p role="alert" class="error">Models: {choices.error}</p>}
        <fieldset class="row">
          <legend>Mode</legend>
          <label>
            <input type="radio" name="mode" checked={!compare} onChange={() => setCompare(false)} /> Single
          </label>
          <label>
            <input type="radio" name="mode" checked={compare} onChange={() => setCompare(true)} /> Compare 2–4 models
          </label>
        </fieldset>
        <div class="grid">
          {active.map((m, i) => (
            <label>
              {compare ? `Model ${i + 1}` : "Model, route or provider:model"}
              <input
                name={`model-${i}`}
                list="model-choices"
                value={m}
                required
                autocomplete="off"
                placeholder="search models"
                onInput={(e) => {
                  const v = e.currentTarget.value;
                  setModels((all) => all.map((x, j) => (j === i ? v : x)));
                }}
              />
            </label>
          ))}
          {compare && (
            <div class="row">
              <button type="button" disabled={models.length >= 4} onClick={() => setModels([...models, ""])}>
                Add model
              </button>
              <button type="button" disabled={models.length <= 2} onClick={() => setModels(models.slice(0, -1))}>
                Remove model
              </button>
            </div>
          )}
          <label>
            Strategy
            <select value={strategy} onChange={(e) => setStrategy(e.currentTarget.value)}>
              <option value="">route's default</option>
              {session.strategies.map((s) => (
                <option value={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>
            Priority (auto)
            <select value={priority} onChange={(e) => setPriority(e.currentTarget.value)}>
              <option value="">route's default</option>
              {session.priorities.map((p) => (
                <option value={p}>{p}</option>
              ))}
            </select>
          </label>
          <label>
            Max tokens
            <input type="number" min="1" value={maxTokens} onInput={(e) => setMaxTokens(e.currentTarget.value)} />
          </label>
          <label>
            Temperature
            <input
              type="number"
              min="0"
              max="2"
              step="0.1"
              placeholder="default"
              value={temperature}
              onInput={(e) => setTemperature(e.currentTarget.value)}
            />
          </label>
          <label class="check">
            <input type="checkbox" checked={stream} onChange={(e) => setStream(e.currentTarget.checked)} /> Stream
          </label>
          <label>
            Attach files
            <input type="file" multiple onChange={async (e) => setFiles(await readFiles(e.currentTarget.files))} />
          </label>
        </div>
        <label>
          System prompt
          <textarea rows={2} value={system} onInput={(e) => setSystem(e.currentTarget.value)} />
        </label>
        <label>
          Message
          <textarea rows={4} required value={message} onInput={(e) => setMessage(e.currentTarget.value)} />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Running…" : compare ? "Compare" : "Send"}
        </button>
      </form>
      {runs.length > 0 && (
        <div class={compare ? "columns" : ""}>
          {runs.map((r, i) => (
            <div class="column" data-column={i}>
              <h2>{active[i]}</h2>
              {r ? <Answer run={r} /> : <p>Starting…</p>}
            </div>
          ))}
        </div>
      )}
      {compare && runs.length > 1 && (
        <div class="scroll">
          <table class="summary" aria-label="Comparison summary">
            <thead>
              <tr><th>Model</th><th>Provider</th><th>TTFT</th><th>Total</th><th>Tokens/s</th><th>Cost</th></tr>
            </thead>
            <tbody>
              {runs.map((r, i) => {
                if (!r) return <tr><td>{active[i]}</td><td colSpan={5}>starting</td></tr>;
                const f = figures(r, now);
                return (
                  <tr>
                    <td>{r.model}</td>
                    <td>{r.provider ?? (r.error ? "failed" : "—")}</td>
                    <td>{seconds(f.ttft)}</td>
                    <td>{seconds(f.elapsed)}</td>
                    <td>{rate(f.tokensPerSecond)}</td>
                    <td>{usd(r.cost)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

// Providers and keys: upstream key health (with "check now") and gateway keys: spend
// against budget, limits, allowed models; create (secret shown once), edit limits, revoke.

import { useState } from "preact/hooks";
import { ApiError, getJson, sendJson, type GatewayKey, type ProviderKey } from "../api";
import { usd, when } from "../format";
import { useLoad } from "../hooks";

const PERIODS = ["daily", "monthly", "total"] as const;

function errText(err: unknown): string {
  return err instanceof ApiError || err instanceof Error ? err.message : String(err);
}

function ProviderHealth() {
  const [checking, setChecking] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const keys = useLoad((s) => getJson<{ data: ProviderKey[] }>("/api/models/providers", s), []);
  async function checkNow() {
    setChecking(true);
    setError(null);
    try {
      await sendJson("POST", "/api/models/providers/check");
      keys.reload();
    } catch (err) {
      setError(errText(err));
    } finally {
      setChecking(false);
    }
  }
  const rows = keys.data?.data ?? [];
  return (
    <section aria-labelledby="provider-keys">
      <div class="row spread">
        <h2 id="provider-keys">Provider keys</h2>
        <button type="button" onClick={checkNow} disabled={checking}>
          {checking ? "Checking…" : "Check now"}
        </button>
      </div>
      {(keys.error || error) && <p role="alert" class="error">{keys.error ?? error}</p>}
      {rows.length === 0 && !keys.loading && <p>No provider with a key is configured.</p>}
      <div class="scroll">
        <table class="cards">
          <thead>
            <tr><th>Provider</th><th>Host</th><th>Key</th><th>Status</th><th>Last checked</th><th>Latency</th><th>Last error</th></tr>
          </thead>
          <tbody>
            {rows.map((k) => (
              <tr>
                <td data-label="Provider">{k.provider}</td>
                <td data-label="Host">{k.host}</td>
                <td data-label="Key">{k.key ? `…${k.key}` : "—"}</td>
                <td data-label="Status" data-field="status">
                  <span class={`status s-${k.status}`}>{k.status}</span>
                  {k.detail && <span class="check"> {k.detail}</span>}
                </td>
                <td data-label="Last checked">{k.last_checked ?? "never"}</td>
                <td data-label="Latency">{k.latency_ms !== null ? `${k.latency_ms} ms` : "—"}</td>
                <td data-label="Last error" data-field="last-error">{k.last_error ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Bar({ spent, budget, label }: { spent: number; budget: number | null; label: string }) {
  if (budget === null) return <span>{label}: {usd(spent)} (no budget)</span>;
  const ratio = budget > 0 ? Math.min(1, spent / budget) : 1;
  return (
    <span class="budget">
      {label}: {usd(spent)} of {usd(budget)}
      <meter min={0} max={1} low={0.5} high={0.8} optimum={0} value={ratio} aria-label={`${label} spend`} />
    </span>
  );
}

interface Draft {
  name: string;
  daily: string;
  monthly: string;
  total: string;
  rpm: string;
  tpm: string;
  models: string;
}

const EMPTY: Draft = { name: "", daily: "", monthly: "", total: "", rpm: "", tpm: "", models: "" };

function num(v: string): number | null {
  return v.trim() === "" ? null : Number(v);
}

/** The admin API's key settings from the form (blank fields clear a limit). */
export function specOf(d: Draft): Record<string, unknown> {
  const models = d.models.split(",").map((m) => m.trim()).filter(Boolean);
  return {
    name: d.name,
    budget: { daily: num(d.daily), monthly: num(d.monthly), total: num(d.total) },
    rpm: num(d.rpm),
    tpm: num(d.tpm),
    models: models.length ? models : null,
  };
}

function draftOf(k: GatewayKey): Draft {
  const s = (v: number | null) => (v === null ? "" : String(v));
  return {
    name: k.name,
    daily: s(k.budget.daily),
    monthly: s(k.budget.monthly),
    total: s(k.budget.total),
    rpm: s(k.rpm),
    tpm: s(k.tpm),
    models: (k.models ?? []).join(", "),
  };
}

function KeyForm(props: { initial: Draft; submit: string; onSubmit: (d: Draft) => Promise<void>; onCancel?: () => void }) {
  const [d, setD] = useState(props.initial);
  const [error, setError] = useState<string | null>(null);
  const field = (name: keyof Draft, label: string, numeric = true) => {
    const onInput = (e: { currentTarget: HTMLInputElement }) => setD({ ...d, [name]: e.currentTarget.value });
    return (
      <label>
        {label}
        {numeric ? (
          <input name={name} type="number" min="0" step="any" value={d[name]} onInput={onInput} />
        ) : (
          <input name={name} type="text" value={d[name]} onInput={onInput} />
        )}
      </label>
    );
  };
  return (
    <form
      class="grid keyform"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          await props.onSubmit(d);
          setError(null);
        } catch (err) {
          setError(errText(err));
        }
      }}
    >
      {field("name", "Name", false)}
      {field("daily", "Daily budget $")}
      {field("monthly", "Monthly budget $")}
      {field("total", "Total budget $")}
      {field("rpm", "Requests/min")}
      {field("tpm", "Tokens/min")}
      {field("models", "Allowed models (comma-separated, globs)", false)}
      <div class="row">
        <button type="submit" class="primary">{props.submit}</button>
        {props.onCancel && <button type="button" onClick={props.onCancel}>Cancel</button>}
      </div>
      {error && <p role="alert" class="error">{error}</p>}
    </form>
  );
}

function GatewayKeys() {
  const keys = useLoad((s) => getJson<{ data: GatewayKey[] }>("/api/keys", s), []);
  const [secret, setSecret] = useState<{ name: string; key: string } | null>(null);
  const [copied, setCopied] = useState(false);
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function revoke(k: GatewayKey) {
    if (!confirm(`Revoke key “${k.name || k.id}”? Requests with it will be refused.`)) return;
    try {
      await sendJson("DELETE", `/api/keys/${encodeURIComponent(k.id)}`);
      keys.reload();
    } catch (err) {
      setError(errText(err));
    }
  }

  return (
    <section aria-labelledby="gateway-keys">
      <h2 id="gateway-keys">Gateway keys</h2>
      {(keys.error || error) && <p role="alert" class="error">{keys.error ?? error}</p>}
      {secret && (
        <div class="secret" role="status">
          <p>
            The secret of <strong>{secret.name || "the new key"}</strong>, shown this once: copy it now.
          </p>
          <code data-field="secret">{secret.key}</code>
          <div class="row">
            <button
              type="button"
              onClick={async () => {
                await navigator.clipboard.writeText(secret.key);
                setCopied(true);
              }}
            >
              {copied ? "Copied" : "Copy"}
            </button>
            <button type="button" onClick={() => setSecret(null)}>I have saved it</button>
          </div>
        </div>
      )}
      <details>
        <summary>Create a key</summary>
        <KeyForm
          initial={EMPTY}
          submit="Create key"
          onSubmit={async (d) => {
            const created = await sendJson<GatewayKey & { key: string }>("POST", "/api/keys", specOf(d));
            setCopied(false);
            setSecret({ name: created.name, key: created.key });
            keys.reload();
          }}
        />
      </details>
      <ul class="keys">
        {(keys.data?.data ?? []).map((k) => (
          <li class={k.revoked ? "revoked" : ""} data-key={k.id}>
            <div class="row spread">
              <strong>{k.name || k.id}</strong>
              <span class={`status ${k.revoked ? "s-invalid" : "s-valid"}`}>
                {k.revoked ? `revoked ${when(k.revoked_at)}` : "active"}
              </span>
            </div>
            <p class="muted">
              {k.key_hint} · created {when(k.created_at)} · {k.rpm ?? "no"} rpm limit · {k.tpm ?? "no"} tpm limit ·
              models: {k.models?.join(", ") ?? "all"}
            </p>
            <div class="bars">
              {PERIODS.map((p) => (
                <Bar spent={k.spend?.[p] ?? 0} budget={k.budget[p]} label={p} />
              ))}
            </div>
            {!k.revoked && (
              <div class="row">
                <button type="button" onClick={() => setEditing(editing === k.id ? null : k.id)}>Edit limits</button>
                <button type="button" class="danger" onClick={() => revoke(k)}>Revoke</button>
              </div>
            )}
            {editing === k.id && (
              <KeyForm
                initial={draftOf(k)}
                submit="Save"
                onCancel={() => setEditing(null)}
                onSubmit={async (d) => {
                  await sendJson("PATCH", `/api/keys/${encodeURIComponent(k.id)}`, specOf(d));
                  setEditing(null);
                  keys.reload();
                }}
              />
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

export function Providers() {
  return (
    <section>
      <h1>Providers and keys</h1>
      <ProviderHealth />
      <GatewayKeys />
    </section>
  );
}

// Performance: per provider and model over a window (GET /api/models/stats), requests, TTFT
// and spend over time (GET /api/stats/series), and each deployment's live state from
// GET /api/routing. Everything refreshes every 5 s without a reload.

import { useState } from "preact/hooks";
import { getJson, query, type ModelStats, type RoutingStatus, type SeriesPoint } from "../api";
import { Chart } from "../chart";
import { count, ms, percent, rate, seconds, usd } from "../format";
import { useLoad } from "../hooks";

export const POLL_MS = 5000;
/** Long windows change slowly and cost the database more to summarise: poll them less. */
export function statsPoll(window: string): number {
  return window === "24h" || window === "7d" ? 60_000 : POLL_MS;
}
const WINDOWS = [
  ["15m", "15 min"],
  ["1h", "1 hour"],
  ["24h", "24 hours"],
  ["7d", "7 days"],
] as const;

export function Performance() {
  const [window, setWindow] = useState("1h");
  const stats = useLoad(
    (s) => getJson<{ data: ModelStats[] }>(`/api/models/stats${query({ window })}`, s),
    [window],
    statsPoll(window),
  );
  const series = useLoad(
    (s) => getJson<{ data: SeriesPoint[]; bucket_s: number }>(`/api/stats/series${query({ window })}`, s),
    [window],
    POLL_MS,
  );
  const routing = useLoad((s) => getJson<RoutingStatus>("/api/routing", s), [], POLL_MS);
  const points = series.data?.data ?? [];
  const xs = points.map((p) => p.ts);
  const error = stats.error ?? series.error ?? routing.error;

  return (
    <section>
      <div class="row spread">
        <h1>Performance</h1>
        <label>
          Window
          <select value={window} onChange={(e) => setWindow(e.currentTarget.value)}>
            {WINDOWS.map(([v, t]) => (
              <option value={v}>{t}</option>
            ))}
          </select>
        </label>
      </div>
      <p class="muted" aria-live="polite">
        Live state refreshes every {POLL_MS / 1000} s, the table every {statsPoll(window) / 1000} s. {error && <span role="alert" class="error">{error}</span>}
      </p>
      <h2>By provider and model</h2>
      <div class="scroll">
        <table class="stats">
          <thead>
            <tr>
              <th>Provider</th><th>Model</th><th>Requests</th><th>Success</th><th>Errors by class</th>
              <th>TTFT p50</th><th>TTFT p95</th><th>Latency p50</th><th>Latency p95</th><th>Tokens/s</th><th>Spend</th>
            </tr>
          </thead>
          <tbody>
            {(stats.data?.data ?? []).map((r) => (
              <tr data-row={`${r.provider}:${r.model}`}>
                <td>{r.provider || "—"}</td>
                <td>{r.model || "—"}</td>
                <td data-field="requests">{count(r.requests)}</td>
                <td>{percent(r.success_rate)}</td>
                <td data-field="errors">
                  {Object.entries(r.errors_by_class ?? {})
                    .map(([k, v]) => `${k} ${v}`)
                    .join(", ") || (r.errors ? String(r.errors) : "none")}
                </td>
                <td>{seconds(r.ttft_p50)}</td>
                <td>{seconds(r.ttft_p95)}</td>
                <td>{seconds(r.latency_p50)}</td>
                <td>{seconds(r.latency_p95)}</td>
                <td>{rate(r.tokens_per_second)}</td>
                <td>{usd(r.spend_usd)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {stats.data && stats.data.data.length === 0 && <p>No requests in this window.</p>}
      </div>
      <h2>Over time</h2>
      <div class="charts">
        <Chart
          title="Requests"
          xs={xs}
          series={[
            { label: "requests", values: points.map((p) => p.requests), color: "#2f6fdd" },
            { label: "errors", values: points.map((p) => p.errors), color: "#c9302c" },
          ]}
        />
        <Chart
          title="Mean TTFT"
          xs={xs}
          series={[{ label: "TTFT", values: points.map((p) => p.ttft_avg), color: "#8a4fd1" }]}
          format={(v) => seconds(v)}
        />
        <Chart
          title="Spend"
          xs={xs}
          series={[{ label: "spend", values: points.map((p) => p.spend_usd), color: "#1f8a4c" }]}
          format={(v) => usd(v)}
        />
      </div>
      <h2>Deployments, live</h2>
      <div class="scroll">
        <table class="cards">
          <thead>
            <tr><th>Deployment</th><th>Circuit</th><th>In flight</th><th>TTFT (avg)</th><th>Latency (avg)</th><th>OK / failed</th><th>Last error</th></tr>
          </thead>
          <tbody>
            {Object.entries(routing.data?.deployments ?? {}).map(([name, d]) => (
              <tr data-deployment={name}>
                <td data-label="Deployment">{name}</td>
                <td data-label="Circuit">
                  <span class={`status c-${d.circuit}`}>
                    {d.circuit}
                    {d.cooldown_remaining_s > 0 ? ` (${d.cooldown_remaining_s.toFixed(0)} s)` : ""}
                  </span>
                </td>
                <td data-label="In flight">{d.in_flight}</td>
                <td data-label="TTFT">{ms(d.ttft_ms)}</td>
                <td data-label="Latency">{ms(d.latency_ms)}</td>
                <td data-label="OK / failed" data-field="outcomes">{d.successes} / {d.failures}</td>
                <td data-label="Last error" data-field="last-error">{d.last_error ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Routes</h2>
      <ul>
        {(routing.data?.routes ?? []).map((r) => (
          <li>
            <strong>{r.name}</strong> ({r.strategy}): {r.deployments.join(" → ")}
          </li>
        ))}
      </ul>
    </section>
  );
}

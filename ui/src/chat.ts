// One playground run: a chat completion through /v1/chat/completions, streamed or not, and
// the live figures the console shows while it runs. `apply*` are pure so they can be tested.

import { ApiError, authHeaders, errorOf } from "./api";
import { readSse, type SseEvent } from "./sse";

export interface Attachment {
  name: string;
  text: string;
}

export interface RunOptions {
  model: string;
  message: string;
  system?: string;
  maxTokens?: number | null;
  temperature?: number | null;
  stream: boolean;
  strategy?: string;
  priority?: string;
  files?: Attachment[];
}

export interface Run {
  model: string;
  status: "running" | "done" | "error";
  /** The gateway's name for the request (`x-request-id`): what feedback refers to. */
  requestId: string | null;
  text: string;
  provider: string | null;
  deployment: string | null;
  strategy: string | null;
  attempts: number | null;
  started: number;
  firstToken: number | null;
  ended: number | null;
  deltas: number;
  promptTokens: number | null;
  completionTokens: number | null;
  cost: number | null;
  error: string | null;
}

/** The user message with attached files before it, as `turnout chat -f` builds it. */
export function promptWithFiles(message: string, files: Attachment[] = []): string {
  return [...files.map((f) => `File: ${f.name}\n\`\`\`\n${f.text}\n\`\`\``), message].join("\n\n");
}

export function requestBody(o: RunOptions): Record<string, unknown> {
  const messages: { role: string; content: string }[] = [];
  if (o.system) messages.push({ role: "system", content: o.system });
  messages.push({ role: "user", content: promptWithFiles(o.message, o.files) });
  const body: Record<string, unknown> = { model: o.model, messages, stream: o.stream };
  if (o.stream) body.stream_options = { include_usage: true };
  if (o.maxTokens) body.max_tokens = o.maxTokens;
  if (o.temperature !== null && o.temperature !== undefined) body.temperature = o.temperature;
  const hints: Record<string, string> = {};
  if (o.strategy) hints.strategy = o.strategy;
  if (o.priority) hints.priority = o.priority;
  if (Object.keys(hints).length) body.turnout = hints;
  return body;
}

export function newRun(model: string, now: number): Run {
  return {
    model,
    status: "running",
    requestId: null,
    text: "",
    provider: null,
    deployment: null,
    strategy: null,
    attempts: null,
    started: now,
    firstToken: null,
    ended: null,
    deltas: 0,
    promptTokens: null,
    completionTokens: null,
    cost: null,
    error: null,
  };
}

/** What the gateway says in its response headers about who served the request. */
export function applyHeaders(run: Run, headers: Headers): Run {
  const cost = headers.get("x-turnout-cost-usd");
  const attempts = headers.get("x-turnout-attempts");
  return {
    ...run,
    requestId: headers.get("x-request-id"),
    provider: headers.get("x-turnout-provider"),
    deployment: headers.get("x-turnout-deployment"),
    strategy: headers.get("x-turnout-strategy"),
    attempts: attempts ? Number(attempts) : null,
    cost: cost !== null ? Number(cost) : run.cost,
  };
}

/** One server-sent event of an OpenAI chat completion stream. */
export function applyEvent(run: Run, ev: SseEvent, now: number): Run {
  if (ev.event === "comment") {
    const m = /^x-turnout-cost-usd=([0-9.eE+-]+)$/.exec(ev.data);
    return m ? { ...run, cost: Number(m[1]) } : run;
  }
  if (ev.data === "[DONE]") return { ...run, status: "done", ended: run.ended ?? now };
  let chunk: any;
  try {
    chunk = JSON.parse(ev.data);
  } catch {
    return run;
  }
  if (chunk.error) {
    return { ...run, status: "error", error: String(chunk.error.message), ended: now };
  }
  let next = run;
  const delta = chunk.choices?.[0]?.delta?.content;
  if (typeof delta === "string" && delta.length) {
    next = {
      ...next,
      text: next.text + delta,
      deltas: next.deltas + 1,
      firstToken: next.firstToken ?? now,
    };
  }
  if (chunk.usage) {
    next = {
      ...next,
      promptTokens: chunk.usage.prompt_tokens ?? null,
      completionTokens: chunk.usage.completion_tokens ?? null,
      cost: typeof chunk.cost_usd === "number" ? chunk.cost_usd : next.cost,
      ended: next.ended ?? now,
    };
  }
  return next;
}

/** A whole (non-streamed) chat completion. */
export function applyResult(run: Run, body: any, now: number): Run {
  return {
    ...run,
    status: "done",
    text: body.choices?.[0]?.message?.content ?? "",
    promptTokens: body.usage?.prompt_tokens ?? null,
    completionTokens: body.usage?.completion_tokens ?? null,
    ended: now,
  };
}

export interface Figures {
  ttft: number | null;
  elapsed: number;
  tokens: number;
  estimated: boolean;
  tokensPerSecond: number | null;
}

/** The live figures of a run at time `now` (ms timestamps): while streaming, tokens are
 * counted as deltas (marked estimated) until the usage chunk gives the real count. */
export function figures(run: Run, now: number): Figures {
  const end = run.ended ?? now;
  const estimated = run.completionTokens === null;
  const tokens = run.completionTokens ?? run.deltas;
  const since = run.firstToken ?? run.started;
  const gen = (end - since) / 1000;
  return {
    ttft: run.firstToken !== null ? (run.firstToken - run.started) / 1000 : null,
    elapsed: (end - run.started) / 1000,
    tokens,
    estimated,
    tokensPerSecond: tokens > 0 && gen > 0 ? tokens / gen : null,
  };
}

/** Run one chat completion, calling `update` with each new state. */
export async function runChat(
  o: RunOptions,
  update: (run: Run) => void,
  signal?: AbortSignal,
): Promise<Run> {
  let run = newRun(o.model, performance.now());
  update(run);
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify(requestBody(o)),
      signal,
    });
    if (!res.ok) throw await errorOf(res);
    run = applyHeaders(run, res.headers);
    update(run);
    if (!o.stream || !res.body) {
      run = applyResult(run, await res.json(), performance.now());
    } else {
      for await (const ev of readSse(res.body)) {
        run = applyEvent(run, ev, performance.now());
        update(run);
      }
      if (run.status === "running") run = { ...run, status: "done", ended: performance.now() };
    }
  } catch (err) {
    const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
    run = { ...run, status: "error", error: message, ended: performance.now() };
  }
  update(run);
  return run;
}

/** What POST /api/feedback answers (docs/api.md). */
export interface FeedbackResult {
  request_id: string;
  score: number;
  deployment: string | null;
  comment: string | null;
  label: string | null;
  outcome: boolean;
}

/** A thumb on an answer, as the feedback endpoint takes it. */
export function feedbackBody(requestId: string, up: boolean): Record<string, string> {
  return { request_id: requestId, thumbs: up ? "up" : "down" };
}

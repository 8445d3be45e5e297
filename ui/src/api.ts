// The console's only way to the gateway: fetch() with the key from this tab's session
// storage as a Bearer header (never a cookie, never a URL), errors in the API's own shape.

const STORAGE = "turnout.key";

export function storedKey(): string | null {
  return sessionStorage.getItem(STORAGE);
}

export function storeKey(key: string | null): void {
  if (key) sessionStorage.setItem(STORAGE, key);
  else sessionStorage.removeItem(STORAGE);
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const key = storedKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** The error a failed response carries: the gateway's `{"error": {...}}` when present
 * (OpenAI shape, or Anthropic's on /v1/messages), else the status line. */
export async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  let type: string | null = null;
  let code: string | null = null;
  try {
    const body = await res.json();
    if (body && typeof body.error === "object" && body.error) {
      message = String(body.error.message ?? message);
      type = body.error.type ?? null;
      code = body.error.code ?? null;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(message, res.status, type, code);
}

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = authHeaders(init.body ? { "Content-Type": "application/json" } : {});
  const res = await fetch(path, { ...init, headers: { ...headers, ...(init.headers as object) } });
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await request(path, { signal })).json() as Promise<T>;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.json() as Promise<T>;
}

/** A query string from the set values only. */
export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// --- shapes of the endpoints the console reads (see /openapi.json) -----------------------

export interface Session {
  role: "admin" | "key" | "none";
  open: boolean;
  strategies: string[];
  priorities: string[];
  key: GatewayKey | null;
}

export interface ModelEntry {
  id: string;
  provider: string;
  upstream: string;
  context_window: number | null;
  max_output: number | null;
  input_price: number | null;
  output_price: number | null;
  cached_input_price?: number | null;
  capabilities: string[];
  tags: string[];
  aliases?: string[];
  quality?: number | null;
  price_source: string | null;
  price_date?: string | null;
  price_verified?: boolean | null;
  price_note?: string | null;
}

export interface OpenAIModel {
  id: string;
  owned_by: string;
}

export interface GatewayKey {
  id: string;
  name: string;
  key_hint: string;
  created_at: number;
  revoked: boolean;
  revoked_at: number | null;
  budget: { daily: number | null; monthly: number | null; total: number | null };
  rpm: number | null;
  tpm: number | null;
  models: string[] | null;
  spend?: Record<string, number>;
}

export interface ProviderKey {
  provider: string;
  host: string;
  wire_api: string;
  key: string;
  status: string;
  last_checked: string | null;
  latency_ms: number | null;
  last_error: string | null;
  detail: string | null;
}

export interface ModelStats {
  provider: string;
  model: string;
  requests: number;
  errors: number;
  success_rate: number | null;
  ttft_p50: number | null;
  ttft_p95: number | null;
  latency_p50: number | null;
  latency_p95: number | null;
  tokens_per_second: number | null;
  output_tokens: number;
  spend_usd: number | null;
  errors_by_class?: Record<string, number>;
}

export interface DeploymentState {
  circuit: string;
  cooldown_remaining_s: number;
  in_flight: number;
  ttft_ms: number | null;
  latency_ms: number | null;
  samples: number;
  successes: number;
  failures: number;
  last_error: string | null;
}

export interface RoutingStatus {
  routes: { name: string; strategy: string; deployments: string[] }[];
  deployments: Record<string, DeploymentState>;
}

export interface LogRecord {
  id: number;
  ts: number;
  request_id: string | null;
  key_id: string | null;
  route: string | null;
  strategy: string | null;
  provider: string | null;
  model: string | null;
  deployment: string | null;
  stream: boolean;
  status: number;
  error: string | null;
  error_message: string | null;
  attempts: number;
  ttft: number | null;
  latency: number | null;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  cost: number | null;
  attempt: number | null;
  /** Detail only, and only with request_log.store_content: redacted, truncated text. */
  prompt?: string | null;
  answer?: string | null;
  failed_attempts?: LogRecord[];
}

export interface Page<T> {
  object: "list";
  data: T[];
  next_cursor: string | null;
}

export interface SeriesPoint {
  ts: number;
  requests: number;
  errors: number;
  ttft_avg: number | null;
  spend_usd: number;
}

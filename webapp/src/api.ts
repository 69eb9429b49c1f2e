// The API client the pages share: the key (kept for this browser tab only), JSON
// requests, and the API's error body ({error, detail}) turned into one exception.

const KEY = "hades-api-key";

export function savedKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function saveKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export class ApiFailure extends Error {
  constructor(
    public status: number,
    public kind: string,
    public detail: string,
    public body: Record<string, unknown> = {},
  ) {
    super(`${status} ${kind}: ${detail}`);
  }
}

async function failure(res: Response): Promise<ApiFailure> {
  let body: Record<string, unknown> = {};
  try {
    body = await res.json();
  } catch {
    // not JSON: a proxy's page, say
  }
  const kind = typeof body.error === "string" ? body.error : res.statusText;
  const detail = typeof body.detail === "string" ? body.detail : `the server answered ${res.status}`;
  return new ApiFailure(res.status, kind, detail, body);
}

export async function request<T>(method: string, path: string, body?: unknown | FormData): Promise<T> {
  const headers: Record<string, string> = {};
  const key = savedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (exc) {
    throw new ApiFailure(0, "unreachable", `the server cannot be reached (${String(exc)})`);
  }
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

export const get = <T,>(path: string) => request<T>("GET", path);
export const post = <T,>(path: string, body?: unknown) => request<T>("POST", path, body);

export function message(exc: unknown): string {
  return exc instanceof ApiFailure ? `${exc.kind}: ${exc.detail}` : String(exc);
}

// --- what the routes answer (the subset the pages read) ---------------------------

export interface Me {
  name: string;
  scopes: string[];
}

export interface Landmark {
  kind: string;
  plant: number;
  x: number;
  y: number;
  confidence: number;
}

export interface Plant {
  plant: number;
  base: [number, number] | null;
  primary_root_tip: [number, number] | null;
  primary_root_length_px: number | null;
  primary_root_length_mm: number | null;
  total_root_length_px: number | null;
  lateral_root_count: number;
  shoot_area_px: number | null;
  confidence: number | null;
  low_confidence: boolean;
  reason: string;
}

export interface Prediction {
  image: { width: number; height: number };
  model: Record<string, string>;
  landmarks: Landmark[];
  plants: Plant[];
  certainty: { per_class: Record<string, number>; low_confidence_threshold: number };
  calibration: { px_per_mm: number | null };
  timing_ms: Record<string, number>;
  masks?: Record<string, string>;
  preview?: string;
}

export interface MoveRecord {
  version: string;
  by: string;
  at: string;
  reason: string;
  action: string;
}

export interface Pointer extends MoveRecord {
  channel: string;
  previous: string | null;
  history: MoveRecord[];
}

export interface ModelDetail {
  name: string;
  serving: string | null;
  followed_channel: string | null;
  versions: { version: string; created_at: string; channels: string[] }[];
  channels: Record<string, Pointer>;
}

export interface VersionDetail {
  name: string;
  version: string;
  created_at: string;
  signed: boolean;
  classes: string[];
  metrics: Record<string, unknown>;
  lineage: Record<string, unknown>;
  records: Record<string, Record<string, unknown>>;
  channels: string[];
  serving: boolean;
}

export interface Job {
  job: string;
  kind: string;
  status: string;
  by: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  args: Record<string, unknown>;
  error: string | null;
  exit_code: number | null;
  mlflow_run_id: string | null;
  counts: Record<string, number> | null;
  outputs?: string[] | null;
}

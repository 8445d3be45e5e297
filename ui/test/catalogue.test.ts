import { describe, expect, it } from "vitest";
import type { ModelEntry } from "../src/api";
import { allowedBy, filterModels, globMatch, promptCost, sortModels, toggleSelection } from "../src/catalogue";

function entry(id: string, extra: Partial<ModelEntry> = {}): ModelEntry {
  return {
    id,
    provider: id.split(":")[0],
    upstream: id.split(":")[1],
    context_window: 8000,
    max_output: 1000,
    input_price: 1,
    output_price: 2,
    capabilities: [],
    tags: [],
    price_source: "test",
    ...extra,
  };
}

const models = [
  entry("openai:big", { input_price: 5, output_price: 15, context_window: 128000, capabilities: ["tools", "vision"] }),
  entry("groq:fast", { input_price: 0.1, output_price: 0.2, tags: ["fast"], aliases: ["speedy"] }),
  entry("local:tiny", { input_price: null, output_price: null, context_window: null }),
];

describe("catalogue", () => {
  it("filters by text (id or alias), capability, tag, provider, price and context", () => {
    const ids = (f: Parameters<typeof filterModels>[1]) => filterModels(models, f).map((m) => m.id);
    expect(ids({ text: "speedy" })).toEqual(["groq:fast"]);
    expect(ids({ capability: "vision" })).toEqual(["openai:big"]);
    expect(ids({ tag: "fast" })).toEqual(["groq:fast"]);
    expect(ids({ provider: "local" })).toEqual(["local:tiny"]);
    expect(ids({ maxInputPrice: 1 })).toEqual(["groq:fast"]); // unknown price never matches
    expect(ids({ minContext: 100000 })).toEqual(["openai:big"]);
  });

  it("sorts either way with unknown values last", () => {
    expect(sortModels(models, "input_price").map((m) => m.id)).toEqual(["groq:fast", "openai:big", "local:tiny"]);
    expect(sortModels(models, "input_price", true).map((m) => m.id)).toEqual(["openai:big", "groq:fast", "local:tiny"]);
  });

  it("prices a prompt of N input and M output tokens", () => {
    expect(promptCost(models[0], 1000, 500)).toBeCloseTo(0.005 + 0.0075);
    expect(promptCost(models[2], 1000, 500)).toBeNull();
  });

  it("keeps at most four models selected", () => {
    let s: string[] = [];
    for (const id of ["a", "b", "c", "d", "e"]) s = toggleSelection(s, id);
    expect(s).toEqual(["b", "c", "d", "e"]);
    expect(toggleSelection(s, "c")).toEqual(["b", "d", "e"]);
  });
});

describe("allowed models", () => {
  it("match like the server's fnmatchcase", () => {
    expect(globMatch("openai:*", "openai:gpt-4o")).toBe(true);
    expect(globMatch("openai:*", "groq:llama")).toBe(false);
    expect(globMatch("gpt-4?", "gpt-4o")).toBe(true);
    expect(globMatch("gpt-[34]o", "gpt-4o")).toBe(true);
    expect(globMatch("gpt-[!34]o", "gpt-4o")).toBe(false);
    expect(globMatch("a.b", "axb")).toBe(false); // a dot is literal
    expect(globMatch("Fast", "fast")).toBe(false);
    expect(allowedBy(null, "anything")).toBe(true);
    expect(allowedBy(["fast", "up:*"], "up:model-a")).toBe(true);
    expect(allowedBy([], "fast")).toBe(false);
  });
});

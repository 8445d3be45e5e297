import { describe, expect, it } from "vitest";
import {
  applyEvent,
  applyHeaders,
  applyResult,
  feedbackBody,
  figures,
  newRun,
  promptWithFiles,
  requestBody,
} from "../src/chat";

const chunk = (obj: unknown) => ({ event: "message", data: JSON.stringify(obj) });

describe("requestBody", () => {
  it("puts files before the message like `turnout chat -f` and routing hints in `turnout`", () => {
    const body = requestBody({
      model: "fast",
      message: "Summarise",
      system: "Be brief",
      stream: true,
      maxTokens: 32,
      temperature: 0,
      strategy: "auto",
      priority: "cost",
      files: [{ name: "a.txt", text: "hello" }],
    });
    expect(body).toEqual({
      model: "fast",
      messages: [
        { role: "system", content: "Be brief" },
        { role: "user", content: "File: a.txt\n```\nhello\n```\n\nSummarise" },
      ],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 32,
      temperature: 0,
      turnout: { strategy: "auto", priority: "cost" },
    });
  });

  it("leaves unset options out", () => {
    expect(requestBody({ model: "m", message: "hi", stream: false })).toEqual({
      model: "m",
      messages: [{ role: "user", content: "hi" }],
      stream: false,
    });
    expect(promptWithFiles("hi")).toBe("hi");
  });
});

describe("a streamed run", () => {
  it("takes who served it from the headers, then text, TTFT, usage and cost from the stream", () => {
    let run = newRun("fast", 1000);
    run = applyHeaders(
      run,
      new Headers({
        "x-turnout-provider": "local",
        "x-turnout-deployment": "local:smollm2",
        "x-turnout-strategy": "priority",
        "x-turnout-attempts": "2",
        "x-request-id": "req-1",
      }),
    );
    expect(run.provider).toBe("local");
    expect(run.requestId).toBe("req-1");
    expect(run.attempts).toBe(2);
    run = applyEvent(run, chunk({ choices: [{ delta: { role: "assistant" } }] }), 1100);
    expect(run.firstToken).toBeNull(); // a role-only chunk is not a token
    run = applyEvent(run, chunk({ choices: [{ delta: { content: "Hel" } }] }), 1250);
    run = applyEvent(run, chunk({ choices: [{ delta: { content: "lo" } }] }), 1300);
    let f = figures(run, 1350);
    expect(f.ttft).toBeCloseTo(0.25);
    expect(f.tokens).toBe(2);
    expect(f.estimated).toBe(true);
    run = applyEvent(
      run,
      chunk({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 4 }, cost_usd: 0.002 }),
      1450,
    );
    run = applyEvent(run, { event: "comment", data: "x-turnout-cost-usd=0.0025" }, 1450);
    run = applyEvent(run, { event: "message", data: "[DONE]" }, 1460);
    expect(run.status).toBe("done");
    expect(run.text).toBe("Hello");
    expect(run.cost).toBe(0.0025);
    f = figures(run, 9999);
    expect(f.elapsed).toBeCloseTo(0.45); // ended at the usage chunk, not at "now"
    expect(f.tokens).toBe(4);
    expect(f.estimated).toBe(false);
    expect(f.tokensPerSecond).toBeCloseTo(4 / 0.2);
  });

  it("turns an in-band error chunk into a failed run", () => {
    const run = applyEvent(newRun("m", 0), chunk({ error: { message: "upstream died" } }), 10);
    expect(run.status).toBe("error");
    expect(run.error).toBe("upstream died");
  });

  it("reads a whole result when not streaming", () => {
    let run = applyHeaders(newRun("m", 0), new Headers({ "x-turnout-cost-usd": "0.5" }));
    run = applyResult(run, { choices: [{ message: { content: "hi" } }], usage: { prompt_tokens: 3, completion_tokens: 1 } }, 500);
    expect(run).toMatchObject({ status: "done", text: "hi", cost: 0.5, completionTokens: 1 });
    expect(figures(run, 600).ttft).toBeNull();
  });
});

describe("feedbackBody", () => {
  it("names the request and the thumb as POST /api/feedback takes them", () => {
    expect(feedbackBody("req-1", true)).toEqual({ request_id: "req-1", thumbs: "up" });
    expect(feedbackBody("req-2", false)).toEqual({ request_id: "req-2", thumbs: "down" });
  });
});

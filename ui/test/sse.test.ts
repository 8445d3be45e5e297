import { describe, expect, it } from "vitest";
import { readSse, SseParser } from "../src/sse";

describe("SseParser", () => {
  it("yields an event only once its blank line arrives, across chunk boundaries", () => {
    const p = new SseParser();
    expect(p.push('data: {"a"')).toEqual([]);
    expect(p.push(":1}\n")).toEqual([]);
    expect(p.push("\n")).toEqual([{ event: "message", data: '{"a":1}' }]);
  });

  it("reads named events, multi-line data and CRLF line ends", () => {
    const p = new SseParser();
    const out = p.push("event: delta\r\ndata: one\r\ndata: two\r\n\r\n");
    expect(out).toEqual([{ event: "delta", data: "one\ntwo" }]);
  });

  it("keeps a CR split from its LF between chunks as one line end", () => {
    const p = new SseParser();
    expect(p.push("data: x\r")).toEqual([]);
    expect(p.push("\n\r\n")).toEqual([{ event: "message", data: "x" }]);
  });

  it("returns comments, which carry a stream's cost", () => {
    const p = new SseParser();
    expect(p.push(": x-turnout-cost-usd=0.00012\n\n")).toEqual([
      { event: "comment", data: "x-turnout-cost-usd=0.00012" },
    ]);
  });

  it("reads a byte stream split inside a multi-byte character", async () => {
    const bytes = new TextEncoder().encode("data: héllo\n\ndata: [DONE]\n\n");
    const split = bytes.indexOf(0xc3) + 1; // between the two bytes of 'é'
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes.slice(0, split));
        c.enqueue(bytes.slice(split));
        c.close();
      },
    });
    const events = [];
    for await (const ev of readSse(body)) events.push(ev.data);
    expect(events).toEqual(["héllo", "[DONE]"]);
  });
});

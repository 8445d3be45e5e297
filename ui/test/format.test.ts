import { describe, expect, it } from "vitest";
import { count, rate, seconds, usd } from "../src/format";

describe("format", () => {
  it("shows costs from micro-cents to dollars", () => {
    expect(usd(null)).toBe("—");
    expect(usd(0)).toBe("$0");
    expect(usd(0.0000123)).toBe("$0.0000123");
    expect(usd(0.0123)).toBe("$0.0123");
    expect(usd(12.345)).toBe("$12.35");
  });

  it("shows durations in ms below 10 s", () => {
    expect(seconds(0.0424)).toBe("42 ms");
    expect(seconds(12.34)).toBe("12.3 s");
    expect(seconds(125)).toBe("2 min 5 s");
    expect(seconds(null)).toBe("—");
  });

  it("abbreviates counts and rates", () => {
    expect(count(999)).toBe("999");
    expect(count(12_345)).toBe("12.3k");
    expect(count(2_500_000)).toBe("2.5M");
    expect(rate(12.34)).toBe("12.3 tok/s");
    expect(rate(Infinity)).toBe("—");
  });
});

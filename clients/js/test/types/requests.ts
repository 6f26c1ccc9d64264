// Under `tsc --strict`: request() is typed by the method map. Each `@ts-expect-error` line
// must fail to compile, and each expectType must hold, or this file does not compile.
import {
  BapiwsClient,
  type ActiveCall,
  type PhoneState,
  type RequestOptions,
} from "bapiws-client";

/** True exactly when A and B are the same type. */
type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

declare const phone: BapiwsClient;

// Results of the documented methods.
expectType<Equal<ReturnType<typeof phone.request<"GetState">>, Promise<PhoneState>>>();
const state = phone.request("GetState");
expectType<Equal<typeof state, Promise<PhoneState>>>();
const asString: Promise<string> = phone.request("GetState");
expectType<Equal<typeof asString, Promise<string>>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"Init">>>, 0>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"CallOut">>>, 0>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"HangUp">>>, 0>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"Answer">>>, 0>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"GetActiveCalls">>>, string[]>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"Sim.IncomingCall">>>, string>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"Sim.QueueCall">>>, string>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"Sim.RemoteHangUp">>>, 0>>();
expectType<Equal<Awaited<ReturnType<typeof phone.getState>>, PhoneState>>();
expectType<Equal<Awaited<ReturnType<typeof phone.getActiveCalls>>, ActiveCall[]>>();
// @ts-expect-error: GetState's result is a string, not a number.
const wrong: Promise<number> = phone.request("GetState");
void wrong;

// Params: positional or named, required where the method needs them.
phone.request("Init");
phone.request("Init", []);
phone.request("Init", ["sim"]);
phone.request("Init", { backend: "sim" });
phone.request("CallOut", ["+358401234567"]);
phone.request("CallOut", { number: "+358401234567" });
phone.request("Sim.QueueCall", ["0505010269", "+3581011223", "Support"]);
phone.request("Sim.RemoteHangUp", { reason: "busy" });
phone.request("Sim.SetAvailability", ["DND"]);
const fixed = ["+358401234567"] as const;
phone.request("CallOut", fixed);
// @ts-expect-error: CallOut needs a number.
phone.request("CallOut");
// @ts-expect-error: CallOut needs a number.
phone.request("CallOut", []);
// @ts-expect-error: params are strings.
phone.request("CallOut", [358401234567]);
// @ts-expect-error: the named param is `number`.
phone.request("CallOut", { phone: "+358401234567" });
// @ts-expect-error: GetState takes no params.
phone.request("GetState", ["now"]);
// @ts-expect-error: Offline is not an availability one can set.
phone.request("Sim.SetAvailability", ["Offline"]);

// Other methods: any params, an unknown result.
const other = phone.request("Vendor.Extension", { anything: 1 });
expectType<Equal<typeof other, Promise<unknown>>>();
const name: string = "GetState";
expectType<Equal<ReturnType<typeof phone.request<typeof name>>, Promise<unknown>>>();

// Per-call options: a timeout, an AbortSignal.
const options: RequestOptions = { timeoutMs: 2000, signal: new AbortController().signal };
phone.request("GetState", [], options);
phone.request("CallOut", ["+358401234567"], { signal: AbortSignal.timeout(1000) });
phone.request("Vendor.Extension", [], { timeoutMs: Infinity });
phone.getState({ timeoutMs: 500 });
phone.callOut("+358401234567", { signal: AbortSignal.timeout(1000) });
// @ts-expect-error: the option is timeoutMs.
phone.request("GetState", [], { timeout: 1000 });

// Events are typed too.
phone.on("StateChanged", ({ state }) => expectType<Equal<typeof state, PhoneState>>());
phone.on("connection", ({ state, error }) => {
  expectType<Equal<typeof state, "connecting" | "open" | "reconnecting" | "closed">>();
  expectType<Equal<typeof error, string | undefined>>();
});

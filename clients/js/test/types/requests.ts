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

// The call-control extensions.
expectType<Equal<Awaited<ReturnType<typeof phone.request<"Call.Hold">>>, 0>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"Call.Transfer">>>, 0>>();
expectType<Equal<Awaited<ReturnType<typeof phone.request<"Events.Subscribe">>>, 0>>();
expectType<Equal<Awaited<ReturnType<typeof phone.hold>>, void>>();
phone.request("HangUp", ["call-1"]);
phone.request("Answer", { callId: "call-1" });
phone.request("Call.Hold");
phone.request("Call.Hold", ["call-1"]);
phone.request("Call.Resume", { callId: "call-1" });
phone.request("Call.Transfer", ["+358401234567"]);
phone.request("Call.Transfer", { number: "+358401234567", callId: "call-1" });
phone.request("Call.SendDtmf", ["12#", "call-1"]);
phone.request("Call.Mute");
phone.request("Call.Unmute", []);
phone.request("Events.Subscribe", ["CallHeld", "MuteChanged"]);
phone.request("Events.Subscribe", { names: ["CallTransferred"] });
// @ts-expect-error: Call.Transfer needs a number.
phone.request("Call.Transfer", []);
// @ts-expect-error: Call.SendDtmf needs digits.
phone.request("Call.SendDtmf");
// @ts-expect-error: Call.Mute takes no params.
phone.request("Call.Mute", ["call-1"]);
// @ts-expect-error: not an extension notification.
phone.request("Events.Subscribe", ["CallComing"]);
// @ts-expect-error: at least one name.
phone.request("Events.Subscribe", []);
phone.hold();
phone.hold("call-1", { timeoutMs: 1000 });
phone.resume();
phone.transfer("+358401234567");
phone.transfer("+358401234567", "call-1");
phone.sendDtmf("123", undefined, { signal: AbortSignal.timeout(1000) });
phone.mute();
phone.unmute({ timeoutMs: 1000 });
phone.hangUp("call-1");
phone.hangUp({ timeoutMs: 1000 });
phone.answer();
phone.answer("call-1", { timeoutMs: 1000 });
phone.subscribe("CallHeld", "CallResumed", "CallTransferred", "MuteChanged");
// @ts-expect-error: subscribe needs a name.
phone.subscribe();
// @ts-expect-error: not an extension notification.
phone.subscribe("CallConnected");
// @ts-expect-error: transfer needs a number.
phone.transfer();
phone.on("CallHeld", ({ callId }) => expectType<Equal<typeof callId, string>>());
phone.on("CallResumed", ({ callId }) => expectType<Equal<typeof callId, string>>());
phone.on("CallTransferred", ({ callId, number }) => {
  expectType<Equal<typeof callId, string>>();
  expectType<Equal<typeof number, string>>();
});
phone.on("MuteChanged", ({ muted }) => expectType<Equal<typeof muted, boolean>>());

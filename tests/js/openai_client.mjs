// The openai npm package, unchanged, against the server at LLM_BASE_URL; prints what it got as JSON
// for tests/integration/test_client_libraries.py to check.
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";

const client = new OpenAI({ baseURL: process.env.LLM_BASE_URL, apiKey: "unused", maxRetries: 0, timeout: 300_000 });
const model = process.env.LLM_MODEL;
const hello = [{ role: "user", content: "Hello!" }];
const greedy = { temperature: 0, max_tokens: 12 };

const whole = await client.chat.completions.create({ model, messages: hello, ...greedy });

const stream = await client.chat.completions.create({
  model, messages: hello, ...greedy, stream: true, stream_options: { include_usage: true },
});
let streamed = "";
let streamedUsage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) streamed += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) streamedUsage = chunk.usage;
}

// Bounded strings: the answer fits in max_tokens whatever the CPU's greedy picks.
const City = z.object({ name: z.string().max(20), country: z.string().max(20) });
const parsed = await client.chat.completions.parse({
  model,
  messages: [{ role: "user", content: "Name a large city and its country." }],
  response_format: zodResponseFormat(City, "city"),
  temperature: 0,
  max_tokens: 80,
});

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object", properties: { city: { type: "string", maxLength: 20 } }, required: ["city"],
    },
  },
};
const called = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "What is the weather in Paris?" }],
  tools: [weather],
  tool_choice: { type: "function", function: { name: "get_weather" } },
  temperature: 0,
  max_tokens: 60,
});
const call = called.choices[0].message.tool_calls[0];

const response = await client.responses.create({ model, input: "Hello!", temperature: 0, max_output_tokens: 12 });

console.log(JSON.stringify({
  whole: { text: whole.choices[0].message.content, usage: whole.usage },
  streamed: { text: streamed, usage: streamedUsage },
  parsed: parsed.choices[0].message.parsed,
  tool_call: { name: call.function.name, arguments: call.function.arguments },
  response: { status: response.status, incomplete: response.incomplete_details, text: response.output_text },
}));

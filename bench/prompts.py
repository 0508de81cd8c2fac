"""The prompts of the comparison with llama.cpp: short (~40 tokens), long (~400) and a five-turn chat.
Every request carries a tag of its own, so that no prompt or prefix cache can help either side."""

from __future__ import annotations

SYSTEM = "You are a helpful writing assistant."
STORY = "Write a long story about a sailor who finds a map to a hidden island."
# About 370 tokens of plain prose; with the tag, system prompt and template the prompt is about 400 tokens.
LONG_TEXT = (
    "The harbour town of Elmsport sits at the mouth of a slow green river. Every morning the fishing "
    "boats leave before sunrise and return in the early afternoon, when the market opens on the stone "
    "quay. The town has a lighthouse, a school, two bakeries, a boatyard and a small museum that keeps "
    "old charts, ship models and the logbooks of captains who sailed from the harbour a century ago. "
    "In winter the storms come from the north-west, and the harbour master closes the outer gate when "
    "the waves climb over the breakwater. The boatyard repairs hulls during those weeks, and the "
    "bakeries sell more bread to the workers than to the fishermen. In spring the river floods the low "
    "meadows east of the town, and farmers move their sheep to the hills until the water drains away. "
    "Summer brings visitors who rent rooms above the shops, walk along the cliffs and take boat trips "
    "to the seal colony on the rocks beyond the point. The museum is busiest in August, when the "
    "curator gives talks about the shipwrecks along the coast and the lighthouse keepers who guided "
    "ships through fog and darkness. The town council has argued for years about building a second "
    "pier for larger ships. Supporters say it would bring trade and jobs; opponents fear that it would "
    "change the character of the old harbour and disturb the seals. Last year the council asked "
    "engineers to study the currents, the sea floor and the cost. Their report suggested a smaller "
    "pier on the southern side, where the water is deeper and the seals rarely swim. The decision "
    "is expected after the autumn elections, and both sides are holding meetings in the school hall. "
    "Meanwhile the fishermen continue their routine, the bakers keep their ovens warm before dawn, "
    "and the lighthouse still turns its beam across the water every night, as it has for two hundred "
    "years."
)
LONG_TASK = "Summarise the following description of a town in three sentences."
# A five-turn chat: each user turn is about 50 tokens; replies are generated (MULTITURN_REPLY_TOKENS).
MULTITURN_USER_TURNS = (
    "I am planning a week-long walking holiday along a rocky coastline in early autumn. I have never "
    "done a multi-day walk before. What are the first three things I should think about when I plan it?",
    "Thank you. I will carry my own pack and sleep in small guesthouses. How heavy should the pack be, "
    "and which items do beginners usually bring but never use on a coastal walk like this one?",
    "The forecast says there may be strong wind and rain on two of the days. Should I change the route "
    "on those days, and how can I stay warm and dry without carrying a lot of extra clothing?",
    "My friend wants to join for the last three days only. How can we meet halfway along the coast, "
    "and what should we agree on before the walk so that we both enjoy it and keep a similar pace?",
    "Finally, please turn everything we discussed into a short checklist that I can print and keep in "
    "my pocket during the walk, with the most important items first and one line for each item.",
)
MULTITURN_REPLY_TOKENS = 56


def tagged(tag: str, user: str) -> list[dict]:
    """The writing assistant's system message carrying the tag, then `user`."""
    return [{"role": "system", "content": f"{SYSTEM} Session {tag}."}, {"role": "user", "content": user}]


def short_messages(tag: str) -> list[dict]:
    """About 40 prompt tokens; the tag makes every prompt new to any prompt cache."""
    return tagged(tag, STORY)


def long_messages(tag: str) -> list[dict]:
    """About 400 prompt tokens, new to any prompt cache."""
    return tagged(tag, f"{LONG_TASK}\n\n{LONG_TEXT}")


def chat_opening(tag: str) -> list[dict]:
    """The system message of a multi-turn chat; the user turns are MULTITURN_USER_TURNS."""
    return [{"role": "system", "content": f"You are a helpful travel assistant. Chat {tag}."}]

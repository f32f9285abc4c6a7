"""The kg split's prompt, in THUDM's kg shape: instructions, acknowledgement, a one-shot example, the question.

The wording is this package's own. The one-shot runs on the embedded graph: its observations are what the tools
answer there (a test replays it), so the example never shows the agent something the tools would not say.
"""

from __future__ import annotations

from agentinstruct.builders.base import Turn, opening_turns

INSTRUCTIONS = """You answer questions with a knowledge base (KB) that you query through tools. Each turn, first \
think, then call exactly one tool.

Tools:
1. get_relations(var) -> list of relations
   var is an entity of the question (write its name as given under "Entities") or a variable such as #0. Lists \
the relations that lead out of var, so you can choose the one that brings you closer to the answer.
2. get_neighbors(var, relation) -> new variable
   The entities reached from var through relation. The relation must be one that get_relations(var) listed.
3. intersection(var1, var2) -> new variable
   The entities in both variables. Both must hold entities of the same type.
4. get_attributes(var) -> list of attributes
   The numerical and date attributes of the entities in var. Use it only for superlatives (the largest, the \
earliest, ...).
5. argmax(var, attribute) -> new variable
   The entity of var with the largest value of attribute, which must be one that get_attributes(var) listed.
6. argmin(var, attribute) -> new variable
   The entity of var with the smallest value of attribute, under the same rule.
7. count(var) -> new variable
   The number of entities in var.

Every new variable gets the next id: #0 first, then #1, #2 and so on. The observation tells you its id and the \
type of its entities, not the entities themselves.

Write each turn as:
Thought: your reasoning
Action: one tool call, e.g. get_relations(#0)

When a variable holds the answer, write "Final Answer: #id" with that variable's id (e.g. Final Answer: #3) \
instead of an action. You have at most 15 turns for a question."""

ACK = "Understood. I will think before each step, call one tool per turn, and end with Final Answer: #id."

ONE_SHOT: list[tuple[str, str]] = [
    (
        "Question: which genres do the films directed by Tobias Quell and starring Mira Solenne belong to?\n"
        "Entities: [Tobias Quell, Mira Solenne]",
        "Thought: First I need the films Tobias Quell directed. I will see which relations lead out of him.\n"
        "Action: get_relations(Tobias Quell)",
    ),
    (
        "Observation: [film.director.films_directed, people.person.nationality, people.person.place_of_birth]",
        "Thought: film.director.films_directed gives the films he directed.\n"
        "Action: get_neighbors(Tobias Quell, film.director.films_directed)",
    ),
    (
        "Observation: variable #0, which are instances of film.film",
        "Thought: Next, the films Mira Solenne stars in. I will list her relations.\n"
        "Action: get_relations(Mira Solenne)",
    ),
    (
        "Observation: [film.actor.films, people.person.nationality, people.person.place_of_birth]",
        "Thought: film.actor.films leads to the films she acted in.\n"
        "Action: get_neighbors(Mira Solenne, film.actor.films)",
    ),
    (
        "Observation: variable #1, which are instances of film.film",
        "Thought: The films that meet both conditions are the intersection of #0 and #1, which are both films.\n"
        "Action: intersection(#0, #1)",
    ),
    (
        "Observation: variable #2, which are instances of film.film",
        "Thought: Now I need the genres of the films in #2. I will look at the relations of #2.\n"
        "Action: get_relations(#2)",
    ),
    (
        "Observation: [film.film.based_on, film.film.country, film.film.directed_by, film.film.genre, "
        "film.film.starring]",
        "Thought: film.film.genre gives the genre of each film.\n"
        "Action: get_neighbors(#2, film.film.genre)",
    ),
    (
        "Observation: variable #3, which are instances of film.film_genre",
        "Thought: #3 holds the genres of those films, which is what the question asks for.\n"
        "Final Answer: #3",
    ),
]
"""(human turn, gpt turn) pairs; the first human turn poses the example question."""


def question_turn(question: str, entity_names: list[str]) -> str:
    """The human turn that poses a question, as THUDM's kg rows do.

    >>> question_turn("who directed Salt and Iron?", ["Salt and Iron"])
    'A new question: who directed Salt and Iron?\\nEntities: [Salt and Iron]'
    """
    return f"A new question: {question}\nEntities: [{', '.join(entity_names)}]"


def prompt_turns(question: str, entity_names: list[str]) -> list[Turn]:
    """Instructions, acknowledgement and one-shot (gpt turns not trained: ``loss`` False), then the question.

    >>> turns = prompt_turns("who directed Salt and Iron?", ["Salt and Iron"])
    >>> [t["from"] for t in turns[:3]], turns[-1]["value"].startswith("A new question:")
    (['human', 'gpt', 'human'], True)
    """
    return opening_turns(INSTRUCTIONS, ACK, ONE_SHOT, question_turn(question, entity_names))

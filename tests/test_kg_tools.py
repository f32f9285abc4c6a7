"""The kg split on the embedded graph: derived trajectories, tools vs S-expressions, F1, bad calls, prompt, data."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from agentinstruct.builders.base import Action, FormatError, Task
from agentinstruct.builders.kg.builder import KgBuilder, f1_score
from agentinstruct.builders.kg.generate import PHRASES, generate
from agentinstruct.builders.kg.prompt import ONE_SHOT, prompt_turns
from agentinstruct.builders.kg.sexpr import SExprError, iri, parse, select_query, to_text
from agentinstruct.builders.kg.store import EMBEDDED_GRAPH, OxigraphBackend, QueryError
from agentinstruct.builders.kg.tasks import EMBEDDED_QUESTIONS, derive_actions, load_questions, reverse_relation
from agentinstruct.builders.kg.tools import TOOLS, KGSession, split_arguments
from agentinstruct.builders.taskfile import TaskFileError

STORE = OxigraphBackend.embedded()
BUILDER = KgBuilder(STORE)
TASKS = BUILDER.load_tasks("embedded")
EVAL_TASKS = KgBuilder(STORE, eval_tasks=True).load_tasks("embedded-eval")
PATTERNS = ("join1", "join2", "and", "and2", "count", "argmax", "argmin")


def play(task: Task, actions: list[Action]):
    """Step the actions in a fresh env; (observations, done flags, score)."""
    with BUILDER.open_env(task) as env:
        env.reset()
        results = [env.step(a) for a in actions]
        return [r.observation for r in results], [r.done for r in results], env.score(actions[-1])


def test_the_embedded_questions_cover_every_pattern_and_both_join_directions():
    kinds = {t.task_id.split("_")[1] for t in TASKS}
    assert kinds == set(PATTERNS) and len(TASKS) == 96
    sexprs = [t.payload["s_expression"] for t in TASKS]
    assert any("(R " in s for s in sexprs) and any("(JOIN (R" not in s for s in sexprs)
    assert len({t.instruction for t in TASKS}) == len(TASKS)
    assert any(len(t.payload["answer"]) > 1 for t in TASKS)


def test_the_evaluation_part_is_a_fifth_of_each_pattern_and_never_in_embedded():
    every = json.loads(EMBEDDED_QUESTIONS.read_text(encoding="utf-8"))
    per_pattern = Counter(q["qid"].split("_")[1] for q in every)
    held_out = Counter(t.task_id.split("_")[1] for t in EVAL_TASKS)
    assert len(EVAL_TASKS) == 24 and held_out == {k: n // 5 for k, n in per_pattern.items()}
    assert not {t.task_id for t in TASKS} & {t.task_id for t in EVAL_TASKS}
    assert len(TASKS) + len(EVAL_TASKS) == len(every)


def test_derived_trajectories_on_the_embedded_graph_reach_f1_1():
    for task in TASKS + EVAL_TASKS:
        actions = BUILDER.reference_actions(task)
        observations, done, score = play(task, actions)
        assert done == [False] * (len(actions) - 1) + [True], (task.task_id, observations)
        assert not any("cannot" in o for o in observations), (task.task_id, observations)
        assert (score.reward, score.success, score.components["exact_match"]) == (1.0, True, 1.0), task.task_id


def test_the_s_expression_executor_agrees_with_the_tool_by_tool_trajectory():
    for task in TASKS:
        expr = parse(task.payload["s_expression"])
        by_sexpr = sorted(next(iter(r.values())) for r in STORE.select(select_query(expr, 1000)))
        # Derivation from the S-expression (not the stored actions) drives the tools here.
        calls = derive_actions(expr, lambda r: reverse_relation(STORE, r))
        assert calls == task.payload["actions"], task.task_id
        session = KGSession(STORE, task.payload["entities"])
        made = 0
        for call in calls:
            tool, _, rest = call.partition("(")
            assert session.call(tool, split_arguments(tool, rest[:-1])).startswith("Observation: ")
            made += tool in ("get_neighbors", "intersection", "argmax", "argmin", "count")
        assert session.answer(f"#{made - 1}") == by_sexpr == sorted(task.payload["answer"]), task.task_id


def test_the_committed_questions_are_what_the_generator_makes():
    fresh = generate(STORE, json.loads(PHRASES.read_text(encoding="utf-8")))
    committed = json.loads(EMBEDDED_QUESTIONS.read_text(encoding="utf-8"))
    assert fresh == committed, "regenerate with: python -m agentinstruct.builders.kg.generate"


def _task(question: str, entities: dict[str, str], gold: list[str]) -> Task:
    return Task("t", question, "train_split", {"question": question, "entities": entities, "answer": gold,
                                               "s_expression": None, "actions": None})


TOBIAS_FILMS = ["m.0ai061", "m.0ai062", "m.0ai069"]  # The Lantern Game, Orchard of Glass, Engine Hearts


def test_wrong_answers_get_the_right_partial_f1():
    task = _task("films directed by Tobias Quell?", {"Tobias Quell": "m.0ai021", "Mira Solenne": "m.0ai024"},
                 TOBIAS_FILMS)
    mira = [Action("get_relations", "Mira Solenne"), Action("get_neighbors", "Mira Solenne, film.actor.films")]
    # Mira Solenne's films: 061, 062, 067, 06a -> 2 of 4 right, 2 of 3 found: F1 = 2 * (1/2 * 2/3) / (1/2 + 2/3).
    *_, score = play(task, mira + [Action("answer", "#0")])
    assert score.reward == pytest.approx(4 / 7) and not score.success
    assert score.components["precision"] == 0.5 and score.components["recall"] == pytest.approx(2 / 3)
    assert score.components["exact_match"] == 0.0
    # A disjoint set, a number for a set, and no answer at all score 0.
    nationality = [Action("get_relations", "Mira Solenne"),
                   Action("get_neighbors", "Mira Solenne, people.person.nationality"), Action("answer", "#0")]
    assert play(task, nationality)[2].reward == 0.0
    assert play(task, mira + [Action("count", "#0"), Action("answer", "#1")])[2].reward == 0.0
    with BUILDER.open_env(task) as env:
        assert env.score(None).reward == 0.0
    # The right set is 1 whatever the order it was found in.
    right = [Action("get_relations", "Tobias Quell"),
             Action("get_neighbors", "Tobias Quell, film.director.films_directed"), Action("answer", "#0")]
    assert play(task, right)[2].reward == 1.0
    assert f1_score({"m.1"}, {"m.1", "m.2"}) == {"f1": pytest.approx(2 / 3), "precision": 1.0, "recall": 0.5,
                                                 "exact_match": 0.0}


def test_bad_arguments_are_error_observations_and_the_episode_goes_on():
    task = _task("films directed by Tobias Quell?", {"Tobias Quell": "m.0ai021", "Mira Solenne": "m.0ai024"},
                 TOBIAS_FILMS)
    bad = [
        Action("get_relations", "Tobias"),  # not an entity of the question
        Action("get_relations", "#4"),  # no such variable
        Action("get_neighbors", "Tobias Quell, film.director.films_directed"),  # before get_relations
        Action("get_relations", "Tobias Quell"),
        Action("get_neighbors", "Tobias Quell, film.film.genre"),  # not one of his relations
        Action("get_neighbors", "Tobias Quell, x> } DROP ALL ; SELECT * WHERE { ?s ?p ?o"),  # injection attempt
        Action("get_attributes", "Tobias Quell"),  # an entity, not a variable
        Action("intersection", "#0, Tobias Quell"),
        Action("answer", "#0"),  # nothing made yet
    ]
    good = [Action("get_neighbors", "Tobias Quell, film.director.films_directed"),
            Action("get_relations", "Mira Solenne"), Action("get_neighbors", "Mira Solenne, people.person.nationality")]
    worse = [
        Action("intersection", "#0, #1"),  # films and countries
        Action("argmax", "#0, film.film.runtime_minutes"),  # before get_attributes
        Action("get_attributes", "#0"),
        Action("argmin", "#0, location.country.population"),  # not an attribute of #0
        Action("count", "#0"),
        Action("get_relations", "#2"),  # a number
        Action("count", "#2"),
        Action("answer", "#9"),
    ]
    observations, done, score = play(task, bad + good + worse + [Action("answer", "#0")])
    errors = [observations[i] for i in (0, 1, 2, 4, 5, 6, 7, 8)]
    errors += [observations[len(bad) + len(good) + i] for i in (0, 1, 3, 5, 6, 7)]
    assert all("cannot be" in o for o in errors), errors
    assert "'Tobias' is neither a variable like #0 nor an entity of the question" in observations[0]
    assert "there is no variable #4 (variables so far: none yet)" in observations[1]
    assert "call get_relations(Tobias Quell) first" in observations[2]
    assert "different types (film.film and location.country)" in observations[len(bad) + len(good)]
    assert observations[len(bad)] == "Observation: variable #0, which are instances of film.film"
    assert observations[len(bad) + len(good) + 4] == "Observation: variable #2, which is a number"
    assert done == [False] * (len(observations) - 1) + [True]
    assert score.reward == 1.0  # the store is untouched and the errors cost nothing but turns
    assert len(STORE.select(f"SELECT ?s WHERE {{ ?s {iri('type.object.name')} ?n }}")) > 70


def test_replies_parse_and_rendered_reference_turns_parse_back():
    parse_reply = BUILDER.parse
    assert parse_reply("Thought: a\nAction: get_relations(Ilse Marrow)") == Action("get_relations", "Ilse Marrow")
    assert parse_reply("Action: `get_neighbors(#0,film.film.genre)`") == Action("get_neighbors", "#0, film.film.genre")
    assert parse_reply("Thought: b\nAction: get\\_relations(#1)\nObservation: [x]\nFinal Answer: #4") == \
        Action("get_relations", "#1")
    assert parse_reply("Thought: done.\nFind Answer: #2") == Action("answer", "#2")
    assert parse_reply("Final Answer: variable #12.") == Action("answer", "#12")
    assert parse_reply('Action: get_relations("Smith, Jones (band)")') == Action("get_relations", "Smith, Jones (band)")
    for reply, message in [
        ("I will look around first.", "No action found"),
        ("Action: look(#0)", "look is not a tool"),
        ("Action: intersection(#0, #1, #2)", "intersection takes exactly two variables"),
        ("Action: get_neighbors(#0)", "get_neighbors takes two arguments"),
        ("Action: the relations of #0", "No tool call after 'Action:'"),
        ("Final Answer: Ilse Marrow", "must name a variable"),
    ]:
        parsed = parse_reply(reply)
        assert isinstance(parsed, FormatError) and message in parsed.message, (reply, parsed)
    kinds = set()
    for task in TASKS:
        for action in BUILDER.reference_actions(task):
            thought = BUILDER.template_thought(task, action)
            assert isinstance(parse_reply(thought), FormatError), thought
            assert parse_reply(BUILDER.render(thought, action)) == action
            kinds.add(action.kind)
    assert kinds == set(TOOLS) | {"answer"}


def test_the_prompt_has_thudm_kg_shape_and_its_one_shot_replays_on_the_embedded_graph():
    turns = BUILDER.prompt(TASKS[0])
    assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) + ["human"]
    assert [t["loss"] for t in turns if t["from"] == "gpt"] == [False] * (len(turns) // 2)
    assert all(t["loss"] is None for t in turns if t["from"] == "human")
    names = ", ".join(TASKS[0].payload["entities"])
    assert turns[-1]["value"] == f"A new question: {TASKS[0].instruction}\nEntities: [{names}]"
    assert all(f"{tool}(" in turns[0]["value"] for tool in TOOLS) and "Final Answer: #" in turns[0]["value"]
    assert turns[2]["value"].startswith("Question: ") and turns[-2]["value"].endswith("Final Answer: #3")
    assert prompt_turns("q?", ["A"])[:-1] == turns[:-1]

    task = _task("genres?", {"Tobias Quell": "m.0ai021", "Mira Solenne": "m.0ai024"}, ["m.0ai042", "m.0ai043"])
    actions = [BUILDER.parse(gpt) for _, gpt in ONE_SHOT]
    observations, done, score = play(task, actions)
    assert observations[:-1] == [human for human, _ in ONE_SHOT[1:]]
    assert done[-1] and score.reward == 1.0


def test_the_embedded_graph_follows_freebase_conventions():
    def rows(query: str) -> list[dict[str, str]]:
        return STORE.select(query)

    expected = iri("type.property.expected_type")
    typed = iri("type.object.type")
    relations = {r["r"]: r["t"] for r in rows(f"SELECT ?r ?t WHERE {{ ?r {expected} ?t }}")
                 if not r["t"].startswith("type.")}
    assert len(relations) == 28
    for rel, out_type in relations.items():
        rev = reverse_relation(STORE, rel)
        assert rev in relations and reverse_relation(STORE, rev) == rel
        # The reverse relation leads back to the type this relation starts from, and every object is typed.
        untyped = rows(f"SELECT ?o WHERE {{ ?s {iri(rel)} ?o FILTER NOT EXISTS {{ ?o {typed} {iri(out_type)} }} }}")
        assert not untyped, (rel, untyped)
        backwards = rows(f"SELECT ?s WHERE {{ ?s {iri(rel)} ?o FILTER NOT EXISTS {{ ?o {iri(rev)} ?s }} }}")
        assert not backwards, (rel, backwards)
    names = [r["n"] for r in rows(f"SELECT ?e ?n WHERE {{ ?e {iri('type.object.name')} ?n "
                                  f"FILTER(STRSTARTS(STR(?e), \"http://rdf.freebase.com/ns/m.\")) }}")]
    assert len(names) == len(set(names)) >= 70
    assert EMBEDDED_GRAPH.suffix == ".ttl"


def test_s_expressions_parse_check_and_compile():
    expr = parse("(ARGMAX (AND film.film (JOIN (R film.director.films_directed) m.0ai021)) film.film.runtime_minutes)")
    assert to_text(expr) == "(ARGMAX (AND film.film (JOIN (R film.director.films_directed) m.0ai021)) " \
        "film.film.runtime_minutes)"
    assert STORE.select(select_query(expr, 10)) == [{"x": "m.0ai062"}]  # Orchard of Glass, 141.5 minutes
    assert STORE.select(select_query(parse("(ARGMAX (JOIN (R location.country.cities) m.0ai001) "
                                           "location.citytown.date_founded)"), 10)) == [{"x": "m.0ai012"}]
    for bad, message in [
        ("(JOIN film.film.genre m.0ai060", "missing ')'"),
        ("(JOIN film.film.genre m.0ai060))", "unexpected text"),
        ("(lt film.film.runtime_minutes 100^^http://www.w3.org/2001/XMLSchema#float)", "unsupported operator"),
        ("(JOIN film.film.genre \"Drama\"@en)", "unsupported atom"),
        ("(AND film.film m.0ai060)", "AND needs at least one sub-expression"),
        ("(JOIN (R film.film.genre) (COUNT m.0ai060))", "COUNT is only supported as the outermost"),
        ("(JOIN <http://x/y> m.0ai060)", "unsupported atom"),
        ("(ARGMAX m.0ai001 (R location.country.population))", "attribute name"),
        ("", "empty"),
    ]:
        with pytest.raises(SExprError, match=re.escape(message)):
            parse(bad)


def test_the_embedded_store_stops_at_its_timeout_and_row_cap():
    slow = OxigraphBackend.embedded(timeout_s=0.2, max_rows=10**9)
    with pytest.raises(QueryError, match="timed out after 0.2 s"):
        slow.select("SELECT * WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }")
    capped = OxigraphBackend.embedded(max_rows=5)
    assert len(capped.select("SELECT * WHERE { ?a ?b ?c }")) == 5
    with pytest.raises(QueryError, match="syntax"):
        STORE.select("SELECT WHERE")


def test_agentbench_dev_questions_load_translate_and_give_named_reference_actions(agentbench):
    """The dev.json questions are Freebase questions: without a Freebase endpoint they cannot be executed, so this
    checks that they load, that every S-expression parses and compiles to SPARQL that a SPARQL engine accepts, and
    that their AgentBench action lists become actions with the entity names the agent sees."""
    path = agentbench / "knowledgegraph" / "dev.json"
    tasks = load_questions(path, "train_split")
    assert len(tasks) == 20 and {t.source for t in tasks} == {"train_split"}
    for task in tasks:
        expr = parse(task.payload["s_expression"])
        query = select_query(expr, 1000)
        for entity_id in task.payload["entities"].values():
            assert iri(entity_id) in query
        assert STORE.select(query) in ([], [{"count": "0"}])  # valid SPARQL; the embedded graph has no Freebase
        actions = BUILDER.reference_actions(task)
        assert actions[-1].kind == "answer" and len(actions) == len(task.payload["actions"]) + 1
        for action in actions[:-1]:
            assert BUILDER.parse(BUILDER.render("t", action)) == action
    first = BUILDER.reference_actions(tasks[0])
    assert first[1] == Action("get_neighbors", "Did you see that thing? That’s Sidat-Singh! The Syracuse Walking "
                                                "Dream!, media_common.quotation.author")
    assert first[-1] == Action("answer", "#3")  # three get_neighbors and an intersection
    assert tasks[4].payload["answer"] == ["1"]  # a COUNT question's gold value


def test_embedded_questions_are_the_packages_and_a_users_file_is_a_benchmarks(tmp_path):
    assert {t.source for t in TASKS} == {"package"}
    path = tmp_path / "q.json"
    path.write_text(EMBEDDED_QUESTIONS.read_text())
    assert {t.source for t in BUILDER.load_tasks(str(path))} == {"train_split"}


def test_question_files_with_bad_fields_are_refused_with_file_line_and_field(tmp_path):
    good = json.loads(EMBEDDED_QUESTIONS.read_text())[0]
    path = tmp_path / "q.json"

    def second_starts() -> int:  # the line where question 1 starts (json.dumps with indent=1 opens it with " {")
        return [n for n, text in enumerate(path.read_text().splitlines(), 1) if text == " {"][1]

    for change, field, problem in [
        ({"question": ""}, "question", "must be a non-empty string"),
        ({"entities": ["x"]}, "entities", "must be an object of entity name -> Freebase id"),
        ({"answer": []}, "answer", "must be a non-empty list"),
        ({"s_expression": None, "actions": None}, None, "needs 's_expression' or 'actions'"),
        ({"actions": "get_relations(m.1)"}, "actions", "must be a list of tool calls"),
    ]:
        path.write_text(json.dumps([good, {**good, "qid": "second", **change}], indent=1))
        line = second_starts()
        where = rf"q.json:{line}: task 1: " + (f"{field}: " if field else "") + re.escape(problem)
        with pytest.raises(TaskFileError, match=where) as info:
            load_questions(path, "train_split")
        assert (info.value.path, info.value.line, info.value.index, info.value.field) == (str(path), line, 1, field)
    path.write_text(json.dumps([good, good], indent=1))
    with pytest.raises(TaskFileError, match=rf"q.json:{second_starts()}: task 1: qid: '{good['qid']}' appears twice"):
        load_questions(path, "train_split")
    path.write_text("{")
    with pytest.raises(TaskFileError, match="q.json:1: not valid JSON") as info:
        BUILDER.load_tasks(str(path))
    assert (info.value.line, info.value.index) == (1, None)
    with pytest.raises(ValueError, match="neither 'embedded', 'embedded-eval' nor a question file"):
        BUILDER.load_tasks(str(tmp_path / "missing.json"))

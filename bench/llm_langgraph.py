#!/usr/bin/env python3
"""N chat completions fanned out by LangGraph (the Send API, one branch per item) through
langchain-openai's ChatOpenAI, all branches in flight at once. Prints the wall time in seconds.

    python3 bench/llm_langgraph.py BASE_URL N
"""
import asyncio
import operator
import sys
import time
from typing import Annotated, TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

base, n = sys.argv[1], int(sys.argv[2])
model = ChatOpenAI(base_url=base, api_key="unused", model="bench-model", max_retries=0,
                   timeout=60)


class State(TypedDict):
    items: list
    answers: Annotated[list, operator.add]


async def ask(state):
    answer = await model.ainvoke(f"item {state['item']}")
    return {"answers": [answer.content]}


def fan_out(state):
    return [Send("ask", {"item": i}) for i in state["items"]]


graph = StateGraph(State)
graph.add_node("ask", ask)
graph.add_conditional_edges(START, fan_out, ["ask"])
graph.add_edge("ask", END)
app = graph.compile()


async def main():
    start = time.perf_counter()
    out = await app.ainvoke({"items": list(range(n)), "answers": []},
                            {"max_concurrency": n})
    elapsed = time.perf_counter() - start
    assert len(out["answers"]) == n
    print(f"{elapsed:.3f}")


asyncio.run(main())

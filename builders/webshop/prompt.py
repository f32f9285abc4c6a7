"""The webshop split's prompt, in THUDM's webshop shape: instructions, "Ok.", one example, then the first page.

The wording and the example are this package's own. The example's pages have the shop's exact text format
(fields joined by `` [SEP] ``) but show a made-up product that is not in any catalogue, so it teaches the format
without giving away a goal; its gpt turns are not trained (``loss`` False).
"""

from __future__ import annotations

from agentinstruct.builders.base import Turn, opening_turns

INSTRUCTIONS = """You are shopping online in WebShop. I give you an instruction that describes the product to buy, \
and each round I show you the page you are on, as text with its fields separated by [SEP].

You can take one of two actions a round:
search[keywords]   type keywords into the search box (the search page has one; you may search from any page)
click[label]       click a button, a product (its ID, e.g. B0ABC12345) or an option shown on the page

Click only labels the current page shows, for example Back to Search, Next >, < Prev, Description, Features, \
Reviews, an option value or Buy Now. An action that is not valid does nothing, and you see the same page again. \
Choose the product that fits the instruction, select the options it asks for, and finish with click[Buy Now] \
within 10 rounds; choose your search keywords with care.

Answer each round in this format:

Thought:
I think ...

Action:
click[something]"""

ACK = "Ok."

ONE_SHOT: list[tuple[str, str]] = [
    (
        "WebShop [SEP] Instruction: [SEP] i want a stainless steel water bottle that keeps drinks cold, in teal, "
        "and price lower than 30.00 dollars [SEP] Search",
        "Thought:\nI think I should search for an insulated stainless steel water bottle.\n\n"
        "Action:\nsearch[stainless steel water bottle cold teal]",
    ),
    (
        "Instruction: [SEP] i want a stainless steel water bottle that keeps drinks cold, in teal, and price lower "
        "than 30.00 dollars [SEP] Back to Search [SEP] Page 1 (Total results: 3) [SEP] Next > [SEP] B0EXAMPLE1 "
        "[SEP] Brookline Insulated Water Bottle - Stainless Steel, Keeps Drinks Cold 24 Hours [SEP] $21.5 [SEP] "
        "B0EXAMPLE2 [SEP] Brookline Glass Water Bottle with Sleeve [SEP] $14.99 [SEP] B0EXAMPLE3 [SEP] Summit "
        "Stainless Steel Bottle, Vacuum Insulated [SEP] $34.0",
        "Thought:\nI think B0EXAMPLE1 is stainless steel, keeps drinks cold and costs less than 30 dollars, so I "
        "will open it.\n\nAction:\nclick[B0EXAMPLE1]",
    ),
    (
        "Instruction: [SEP] i want a stainless steel water bottle that keeps drinks cold, in teal, and price lower "
        "than 30.00 dollars [SEP] Back to Search [SEP] < Prev [SEP] color [SEP] black [SEP] teal [SEP] white [SEP] "
        "size [SEP] 18 oz [SEP] 32 oz [SEP] Brookline Insulated Water Bottle - Stainless Steel, Keeps Drinks Cold "
        "24 Hours [SEP] Price: $21.5 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now",
        "Thought:\nI think I should select the teal color that the instruction asks for.\n\nAction:\nclick[teal]",
    ),
    (
        "Instruction: [SEP] i want a stainless steel water bottle that keeps drinks cold, in teal, and price lower "
        "than 30.00 dollars [SEP] Back to Search [SEP] < Prev [SEP] color [SEP] black [SEP] teal [SEP] white [SEP] "
        "size [SEP] 18 oz [SEP] 32 oz [SEP] Brookline Insulated Water Bottle - Stainless Steel, Keeps Drinks Cold "
        "24 Hours [SEP] Price: $21.5 [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now",
        "Thought:\nI think this bottle in teal fits the instruction and the price is under 30 dollars, so I will buy "
        "it.\n\nAction:\nclick[Buy Now]",
    ),
]
"""(human turn, gpt turn) pairs of the example."""


def prompt_turns(first_page: str) -> list[Turn]:
    """Instructions, acknowledgement and the example (gpt turns ``loss`` False), then the task's first page.

    >>> turns = prompt_turns("WebShop [SEP] Instruction: [SEP] i need boots [SEP] Search")
    >>> [t["from"] for t in turns[:3]], turns[1]["value"], turns[-1]["value"].startswith("WebShop [SEP]")
    (['human', 'gpt', 'human'], 'Ok.', True)
    """
    return opening_turns(INSTRUCTIONS, ACK, ONE_SHOT, first_page)

"""Built-in task labels, the example prompts that define them for the classifier, and the
keyword baseline the classifier is measured against.

A route may use any of these labels on its deployments (``tasks: [code_generation]``), add
examples to one (``tasks: {code_generation: ["..."]}`` on the route) or define its own labels
the same way. The examples are short, varied and written for this file.
"""

from __future__ import annotations

import json
import os
import re

__all__ = ["BUILTIN_TASKS", "DATASET_TASKS", "keyword_task", "load_labelled"]

BUILTIN_TASKS: dict[str, tuple[str, ...]] = {
    "code_generation": (
        "Write a Python function that returns the n-th Fibonacci number.",
        "Implement a binary search tree in Java with insert and delete.",
        "Write a function to check whether a string is a palindrome.",
        "Create a REST endpoint in Express that returns a list of users as JSON.",
        "Write a SQL query that finds the top five customers by total order value.",
        "Write a bash script that renames every .txt file in a folder to .md.",
        'def merge_sorted(a, b):\n    """Merge two sorted lists into one sorted list."""',
        "Write a function that counts the vowels in a given string.",
        "Implement a thread-safe LRU cache in Go.",
        "Write a python function to find the maximum product of two numbers in a list.",
        "Generate a React component that shows a paginated table.",
        "Write a program that reads a CSV file and prints the average of the second column.",
        "Complete the function so that it returns the list of prime factors of n.",
        "Write a regular expression and code to validate email addresses.",
    ),
    "code_review": (
        "Explain what this code does line by line.",
        "Why does this function throw a NullPointerException?",
        "Review this pull request and point out bugs and style problems.",
        "What is the time complexity of this algorithm and how could it be faster?",
        "I get 'TypeError: undefined is not a function' in this snippet, what is wrong?",
        "Can you explain the difference between a process and a thread in this program?",
        "Refactor this class to be easier to test and explain your changes.",
        "This SQL query is slow on a large table; why, and how do I fix it?",
        "What does the yield keyword do in this Python generator?",
        "Find the bug: the loop never terminates when the input list is empty.",
        "Explain this regular expression: ^(?=.*\\d)(?=.*[a-z]).{8,}$",
        "Is this code vulnerable to SQL injection?",
    ),
    "math_reasoning": (
        "A train travels 120 km in 1.5 hours. What is its average speed?",
        "Solve for x: 3x + 7 = 22.",
        "Tom has 3 times as many apples as Sara. Together they have 48. How many does Sara have?",
        "What is the derivative of x^3 * sin(x)?",
        "Compute the integral of 1/(1+x^2) from 0 to 1.",
        "How many ways can 5 people sit in a row if two of them must sit together?",
        "Prove that the square root of 2 is irrational.",
        "A shop sells pens at $2 each and notebooks at $5 each. Ana spent $31 on 8 items. "
        "How many notebooks did she buy?",
        "Find all integer solutions of x^2 - y^2 = 15.",
        "If the probability of rain is 0.3 each day, what is the chance of no rain in 3 days?",
        "Three friends live in three houses in a row. The doctor lives left of the teacher and "
        "the painter does not live in the middle. Who lives in the first house?",
        "Let f(n) be the sum of the digits of n. What is f(2^10)?",
        "Mia bakes 4 trays of 12 cookies and gives away a third. How many are left?",
        "What is the remainder when 7^100 is divided by 5?",
    ),
    "knowledge_qa": (
        "Who wrote the novel Pride and Prejudice?",
        "what is the capital city of australia",
        "when did the berlin wall fall",
        "Which planet has the most moons?",
        "Which of the following is a noble gas? A. Oxygen B. Neon C. Nitrogen D. Sodium",
        "What is the function of mitochondria in a cell?",
        "Which organ produces insulin? (A) liver (B) pancreas (C) kidney (D) stomach",
        "who played the lead role in the first james bond film",
        "What causes the seasons on Earth?",
        "In economics, what does a price ceiling usually lead to?",
        "Where would you most likely find a stapler? Choices: office, ocean, forest, bakery",
        "Which metal is liquid at room temperature?",
        "Which amendment to the US constitution protects freedom of speech?",
        "A student drops a ball and a feather in a vacuum. Which of the following is true?",
        "Plants need sunlight because they",
        "The main source of energy for the water cycle is",
        "Read the passage and answer the question. The museum opens at nine and closes at "
        "five; children under six enter free. According to the passage, who pays nothing?",
        "Many people in the village had never seen a doctor until the clinic opened in 1990. "
        "What can we learn from the text?",
        "What do people usually do when they feel cold? A) sweat B) put on a coat C) swim",
        "In which year did the first man land on the moon?",
        "Which element has the chemical symbol Fe?",
        "A scientist measures the temperature of a liquid every minute. Which tool is best?",
        "who sang the song hotel california",
        "who won the football world cup in 1998",
        "when was the eiffel tower built",
        "where is the great barrier reef located",
        "how many players are on a basketball team",
        "who directed the movie jaws",
        "what year did the titanic sink",
        "who is the author of the harry potter books",
        "Which English king had six wives?",
        "What is the name of the ship in Moby Dick?",
        "Which country hosted the 2016 Summer Olympics?",
        "The city of Timbuktu is in which country?",
        "Which painter cut off part of his own ear?",
        "Why do people often carry an umbrella? They want to stay what?",
        "What is a person likely to feel after winning a race?",
        "Sunlight reflected off the moon is seen from Earth because",
        "My grandmother opened a small bakery in 1962. Every morning she rose at four to bake "
        "bread for the village. Years later, the bakery became famous. Why did the bakery "
        "become famous? A. its prices B. its bread C. its location D. its owner",
        "Scientists have found that people who sleep less than six hours a night are more "
        "likely to catch colds. The study followed 164 adults. What is the passage mainly about?",
    ),
    "creative_writing": (
        "Write a short story about a lighthouse keeper who finds a message in a bottle.",
        "Write a haiku about autumn rain.",
        "Write a sentence that uses all of these words: dog, frisbee, catch, park.",
        "Compose a poem about the sea in the style of a sea shanty.",
        "Write a limerick about a cat who loves coffee.",
        "Create a dialogue between a dragon and a knight who would rather not fight.",
        "Make a sentence with the concepts: river, boat, paddle, sunset.",
        "Write the opening paragraph of a mystery novel set in Venice.",
        "Write a toast for my sister's wedding.",
        "Invent a myth explaining why the moon changes shape.",
        "Write song lyrics about leaving your home town.",
        "Describe a futuristic city at night in vivid detail.",
        "Concepts: kitchen, knife, chop, onion. Write one sentence describing a scene.",
        "beach, wave, surfer, ride, board",
        "Use these words in a sentence: snow, mountain, ski, jump.",
    ),
    "summarisation": (
        "Summarise this article in three bullet points.",
        "Give me a one-paragraph summary of the following meeting notes.",
        "TL;DR of this email thread, please.",
        "Condense this report into an executive summary of 100 words.",
        "What are the key takeaways from this text?",
        "Summarize the plot of the following chapter.",
        "Shorten this paragraph while keeping the main points.",
        "Extract the main arguments of this essay in a few sentences.",
        "Write an abstract for the following paper.",
        "Briefly sum up what was decided in this conversation.",
    ),
    "translation": (
        "Translate 'Where is the train station?' into Spanish.",
        "How do you say 'thank you very much' in Japanese?",
        "Translate this paragraph from German to English.",
        "What does 'je ne sais quoi' mean in English?",
        "Translate the following email into formal French.",
        "Render this sentence in Italian: the meeting is postponed until Monday.",
        "Translate to Portuguese: please keep the door closed.",
        "Can you translate this menu from Chinese?",
    ),
    "general_chat": (
        "Hi! How are you today?",
        "I'm feeling stressed about work, any advice?",
        "What should I cook for dinner tonight?",
        "Can you recommend a good movie for the weekend?",
        "Tell me a joke.",
        "What do you think about working from home?",
        "Help me plan a three-day trip to Lisbon.",
        "How can I be more productive in the morning?",
        "Thanks, that was helpful!",
        "Write a polite reply declining a meeting invitation.",
        "What's a good gift for a friend who likes gardening?",
        "Let's chat about your favourite books.",
    ),
}

_KEYWORDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        (
            "code_review",
            r"\b(explain|review|debug|bug|error|refactor|complexity)\b"
            r".*\b(code|function|snippet|query|program|class)\b",
        ),
        (
            "code_generation",
            r"\b(code|function|python|java|javascript|program|script|sql|implement|def|class"
            r"|algorithm)\b",
        ),
        (
            "translation",
            r"\b(translate|translation|in (spanish|french|german|japanese|chinese|italian))\b",
        ),
        ("summarisation", r"\b(summari[sz]e|summary|tl;?dr|key takeaways|condense)\b"),
        (
            "math_reasoning",
            r"\b(solve|calculate|compute|equation|integral|derivative|probability|how many"
            r"|how much|sum of|prove)\b|\d+\s*[-+*/^=]\s*\d+",
        ),
        ("creative_writing", r"\b(story|poem|haiku|limerick|lyrics|sentence|creative|fiction)\b"),
        ("knowledge_qa", r"^\s*(who|what|when|where|which|why|how)\b|\?\s*$"),
    )
)


def keyword_task(text: str, labels: frozenset[str] | None = None) -> str:
    """The keyword baseline (the founding plan's approach): the first label whose keywords
    match, else ``general_chat``. Kept to show what the embedding classifier improves on."""
    for label, pattern in _KEYWORDS:
        if (labels is None or label in labels) and pattern.search(text):
            return label
    return "general_chat"


# The task labels of the LLMRouter data set (``routing-data/llmrouter/query_train.jsonl``),
# by benchmark, mapped to the built-in labels they exercise.
DATASET_TASKS: dict[str, str] = {
    "mbpp": "code_generation",
    "human_eval": "code_generation",
    "gsm8k": "math_reasoning",
    "math": "math_reasoning",
    "agentverse-mgsm": "math_reasoning",
    "agentverse-logicgrid": "math_reasoning",
    "natural_qa": "knowledge_qa",
    "trivia_qa": "knowledge_qa",
    "mmlu": "knowledge_qa",
    "gpqa": "knowledge_qa",
    "commonsense_qa": "knowledge_qa",
    "openbook_qa": "knowledge_qa",
    "arc_challenge": "knowledge_qa",
    "commongen": "creative_writing",
}


def load_labelled(
    path: str | os.PathLike[str], per_task: int | None = None
) -> list[tuple[str, str]]:
    """(prompt, label) pairs from a JSON-lines file with ``task_name`` and ``query`` per line
    (the LLMRouter format); ``task_name`` is mapped through ``DATASET_TASKS`` when it is one of
    its benchmarks, else taken as the label. ``per_task`` keeps the first N of each task."""
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            task = str(row["task_name"])
            if per_task is not None:
                if seen.get(task, 0) >= per_task:
                    continue
                seen[task] = seen.get(task, 0) + 1
            out.append((str(row["query"]), DATASET_TASKS.get(task, task)))
    return out

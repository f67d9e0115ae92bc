"""Scripted customer-service conversations with facts to remember (Chapter 13).

A customer talks to a support assistant over four sessions. Among greetings and small talk they
state facts the assistant must keep: which product they bought and its order number (session 1,
where they also mention the address it was delivered to), a change of address (session 2), a
problem with the product (session 3), how they want to be contacted and which day suits them for
deliveries (session 4). In a fifth session they ask six questions that need those facts.

The small talk is not innocent: it mentions other days of the week, numbers and places, so a
memory that keeps the wrong sentences hands the model a plausible wrong answer, and the old
address is still in the history when the customer asks for the current one.

    dialogues = customer_service_dialogues(4, seed=0)
    d = dialogues[0]
    d.turns[:3]      # [Turn(speaker='Agent', text='Hello, ...', session=1), ...]
    d.questions[0]   # Question(text='What is my order number?', answer='KX-48213', kind='order', ...)

Every dialogue is generated from the templates below with a seeded random generator: the same
``seed`` gives the same conversations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Turn", "Question", "Dialogue", "customer_service_dialogues", "SMALL_TALK"]


@dataclass(frozen=True)
class Turn:
    """One utterance: who said it, what, and in which session (1, 2, ...)."""

    speaker: str
    text: str
    session: int = 1

    def __post_init__(self):
        if not isinstance(self.speaker, str) or not self.speaker.strip():
            raise ValueError(f"a turn needs a speaker name, got {self.speaker!r}")
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"a turn needs some text, got {self.text!r}")
        if isinstance(self.session, bool) or not isinstance(self.session, int) or self.session < 1:
            raise ValueError(f"session must be a positive int, got {self.session!r}")

    def render(self) -> str:
        return f"{self.speaker}: {self.text}"


@dataclass(frozen=True)
class Question:
    """A question from the last session; ``answer`` is the fact a correct reply must contain,
    ``distractor`` an outdated or confusable value that a wrong reply might give instead."""

    text: str
    answer: str
    kind: str
    distractor: str | None = None


@dataclass
class Dialogue:
    customer: str
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)

    @property
    def sessions(self) -> int:
        return max(t.session for t in self.turns)


NAMES = ["Dana Whitfield", "Omar Haddad", "Mei Zhou", "Lukas Berger", "Priya Nair", "Tomas Okafor",
         "Sara Lindqvist", "Diego Alvarez", "Hannah Kowalski", "Yusuf Demir", "Chloe Martin", "Arjun Mehta"]
# (what the customer calls it, the model name a correct answer must contain)
PRODUCTS = [("Nimbus 300 espresso machine", "Nimbus 300"), ("AeroClean X2 vacuum cleaner", "AeroClean X2"),
            ("Brava 5 food processor", "Brava 5"), ("Zephyr 20 desk fan", "Zephyr 20"),
            ("Orion 7 rice cooker", "Orion 7"), ("Kestrel 9 electric kettle", "Kestrel 9"),
            ("Lumo 4 reading lamp", "Lumo 4"), ("Tundra 12 mini fridge", "Tundra 12")]
# (how the customer describes it, the words a correct answer must contain)
PROBLEMS = [("the power button stopped working", "power button"), ("it leaks water from the base", "leak"),
            ("the glass lid cracked on the first day", "lid"), ("it makes a loud rattling noise", "rattl"),
            ("the display shows error code E4", "E4"), ("the plug gets very hot", "plug"),
            ("the timer resets itself", "timer"), ("one of the wheels fell off", "wheel")]
STREETS = ["Larch Street", "Mill Road", "Harbour Lane", "Station Avenue", "Orchard Close", "Kings Way",
           "Willow Drive", "Canal Street", "Rose Terrace", "Bridge Road", "Elm Grove", "Castle Hill"]
CITIES = ["Leeds", "Bristol", "York", "Norwich", "Cardiff", "Dundee", "Exeter", "Lincoln"]
CHANNELS = ["email", "text message", "phone call", "letter"]
DAYS = ["Monday", "Wednesday", "Thursday", "Saturday"]  # other days appear in the small talk

# (customer, agent) exchanges with no fact the questions ask about, several with confusable details.
SMALL_TALK = [
    ("How is your day going?", "Busy but good, thanks for asking!"),
    ("It has been raining all week here.", "Sorry to hear that, I hope the sun comes out soon."),
    ("My daughter turns 7 on Friday, so I am planning a party.", "How lovely, I hope she has a great birthday."),
    ("I waited 25 minutes on the phone yesterday before giving up.", "I apologise for the wait; the chat is usually faster."),
    ("Did you watch the football last night?", "I missed it, was it a good match?"),
    ("My neighbour has the same brand and likes it.", "Good to hear our products are popular on your street!"),
    ("I am writing from the train, so the connection may drop.", "No problem, I will keep my answers short."),
    ("My sister visits every Tuesday and always brings cake.", "That sounds like a nice tradition."),
    ("I am thinking of painting the kitchen green.", "Green kitchens are very fashionable this year."),
    ("The old kettle I had lasted for 12 years.", "They do not make them like that any more!"),
    ("Sorry, my dog keeps barking at the postman.", "No worries, dogs will be dogs."),
    ("I have a dentist appointment at 3 o'clock, so I must be quick.", "Understood, I will be brief."),
    ("We are going to Lisbon for a holiday in June.", "Lisbon is beautiful in early summer."),
    ("A friend recommended your shop to me.", "Please thank your friend for us!"),
    ("I just made a cup of tea before writing to you.", "A cup of tea makes everything better."),
    ("The traffic on the ring road was terrible this morning.", "Rush hour can be painful."),
    ("I work night shifts at the hospital.", "That must be tiring; thank you for your work."),
    ("Is your office open on bank holidays?", "Our chat is open every day from 8 to 8."),
    ("My son is learning the trumpet and it is very loud.", "A future musician in the family!"),
    ("I saw your advert on a bus last week.", "Our marketing team will be pleased to hear it."),
    ("We finally built the wardrobe; it took 4 hours.", "Well done, flat-pack furniture is a challenge."),
    ("My garden is full of tomatoes this year.", "Lucky you, home-grown tomatoes taste the best."),
    ("I will be at my mother's house on Sunday.", "I hope you have a nice visit."),
    ("Your website looks different since the update.", "Yes, it was redesigned last month."),
    ("My cousin lives at 8 Park Street in Oxford.", "Oxford is a lovely city."),
    ("The cat knocked a glass off the table this morning.", "Cats always seem to do that!"),
]


_CHIT_CHATS = 8  # small-talk stretches per conversation: before and after the facts of each session


def _order_number(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(10000, 99999)}"


def _address(rng: random.Random, used: set) -> tuple[str, str]:
    """(the full address, the part a correct answer must contain: number and street)."""
    while True:
        street, city, number = rng.choice(STREETS), rng.choice(CITIES), rng.randint(2, 98)
        if street not in used:
            used.add(street)
            return f"{number} {street}, {city}", f"{number} {street}"


def customer_service_dialogues(n: int = 4, seed: int = 0, small_talk: tuple[int, int] = (1, 3)) -> list[Dialogue]:
    """``n`` scripted conversations (at most len(NAMES) many), each of four sessions plus a
    fifth with six questions. Before and after the facts of each session come between
    ``small_talk[0]`` and ``small_talk[1]`` small-talk exchanges (a customer turn and the agent's
    reply), all different within a conversation."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(NAMES):
        raise ValueError(f"n must be an int between 1 and {len(NAMES)}, got {n!r}")
    lo, hi = small_talk
    most = len(SMALL_TALK) // _CHIT_CHATS
    if not (isinstance(small_talk, tuple) and len(small_talk) == 2 and 0 <= lo <= hi <= most):
        raise ValueError(f"small_talk must be (low, high) with 0 <= low <= high <= {most}, got {small_talk!r}")
    rng = random.Random(seed)
    names = rng.sample(NAMES, n)
    out = []
    for name in names:
        first = name.split()[0]
        product, model_name = rng.choice(PRODUCTS)
        problem, problem_key = rng.choice(PROBLEMS)
        order = _order_number(rng)
        streets: set = set()
        old_address, old_key = _address(rng, streets)
        new_address, new_key = _address(rng, streets)
        channel, day = rng.choice(CHANNELS), rng.choice(DAYS)
        chat = rng.sample(SMALL_TALK, len(SMALL_TALK))  # no exchange repeats within a dialogue

        turns: list[Turn] = []

        def say(session, *pairs):
            for customer, agent in pairs:
                turns.append(Turn("Customer", customer, session))
                turns.append(Turn("Agent", agent, session))

        def chit_chat(session):
            say(session, *[chat.pop() for _ in range(rng.randint(lo, hi))])

        hello = ("Hello, this is the support assistant. How can I help you today?")
        # Session 1: product, order number, delivery address.
        turns.append(Turn("Agent", hello, 1))
        say(1, (f"Hi, my name is {name}.", f"Nice to meet you, {first}."))
        chit_chat(1)
        say(1, (f"I bought the {product} from your shop last week.", "Thank you for your purchase."),
            (f"The order number is {order}.", "Thanks, I can see the order."),
            (f"It was delivered to {old_address}.", "Good, the delivery is marked as complete."))
        chit_chat(1)
        # Session 2: a change of address.
        turns.append(Turn("Agent", hello, 2))
        say(2, (f"Hello again, it is {first}.", f"Welcome back, {first}."))
        chit_chat(2)
        say(2, (f"I have moved house. My new address is {new_address}.", "I have updated your address."))
        chit_chat(2)
        # Session 3: a complaint.
        turns.append(Turn("Agent", hello, 3))
        chit_chat(3)
        say(3, (f"I have a problem with the {model_name}: {problem}.", "I am sorry to hear that. We will send a replacement."))
        chit_chat(3)
        # Session 4: preferences.
        turns.append(Turn("Agent", hello, 4))
        chit_chat(4)
        say(4, (f"Please contact me by {channel} from now on.", "Noted, we will do that."))
        chit_chat(4)
        say(4, (f"Deliveries on a {day} suit me best.", "I have added that to your account."))

        questions = [
            Question("What is my order number?", order, "order"),
            Question("Which product did I buy from you?", model_name, "product"),
            Question("What is my current address?", new_key, "address", distractor=old_key),
            Question("What problem did I report with my product?", problem_key, "problem"),
            Question("How do I want to be contacted?", channel, "contact"),
            Question("On which day of the week should deliveries come?", day, "delivery day"),
        ]
        out.append(Dialogue(name, turns, questions))
    return out

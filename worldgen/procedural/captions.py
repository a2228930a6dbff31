"""The describer: many different prompts for one `WorldSpec`, the way people write them.

`describe(spec, rng, split="train")` picks a sentence shape, a wrapper, and
for each attribute (sometimes left unsaid) one of dozens of phrasings.

Two held-out splits that training never sees, for evaluation:
- phrasings and shapes: about a fifth of every phrase list, of the wrappers and
  some sentence shapes (chosen by a stable hash) appear only with
  ``split="heldout"``;
- attribute combinations: `spec.HELDOUT_COMBINATIONS`; `describe(..., split="train")`
  refuses them.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

from worldgen.errors import UsageError
from worldgen.procedural.spec import HELDOUT_COMBINATIONS, WorldSpec, heldout_combinations

Split = Literal["train", "heldout"]

# -- vocabulary: attribute value -> phrasings ------------------------------------------
# "noun": what the world is; "adj": a word before the noun; "tail": a phrase after it.

BIOME_NOUN = {
    "temperate_forest": ["forest", "woodland", "deciduous forest", "oak forest", "broadleaf forest", "woods", "green woods",
                         "temperate forest", "leafy forest", "birch and oak woods", "forest glade", "wooded valley", "grove",
                         "old forest", "beech wood", "wildwood", "forest clearing", "leafy woodland", "copse"],
    "pine_forest": ["pine forest", "evergreen forest", "conifer forest", "taiga", "boreal forest", "spruce forest", "pinewood",
                    "fir forest", "pine woods", "coniferous woodland", "alpine forest", "evergreen woods", "northern forest",
                    "forest of tall pines", "spruce woods", "mountain pine forest", "pine grove", "fir woods", "needle forest"],
    "desert": ["desert", "sand dunes", "dune sea", "arid desert", "sandy wastes", "wasteland", "dry desert", "sahara-like dunes",
               "erg", "barren desert", "sun-baked dunes", "desert basin", "sandy desert", "parched plain", "badlands of sand",
               "drylands", "hot desert", "rolling dunes", "sea of sand", "dune field"],
    "tundra": ["snowy tundra", "tundra", "frozen plain", "icy wasteland", "snowfield", "arctic plain", "snowbound plain",
               "frozen tundra", "glacial plain", "polar landscape", "winter wasteland", "ice field", "snowy plain",
               "frozen wilderness", "frosty steppe", "arctic tundra", "icy plateau", "white wilderness", "snow-covered flats"],
    "meadow": ["meadow", "grassland", "prairie", "field", "pasture", "green meadow", "grassy plain", "wildflower meadow",
               "rolling hills", "open field", "steppe", "grassy hills", "lea", "flower field", "savanna-like grassland",
               "countryside", "green fields", "downs", "moorland", "heath"],
    "beach": ["tropical beach", "island", "tropical island", "sandy beach", "palm beach", "atoll", "desert island",
              "beach", "tropical shore", "lagoon island", "coral island", "palm-fringed beach", "seaside", "isle",
              "paradise island", "sandy cove", "tropical coast", "beach resort island", "sandbar", "white sand beach"],
    "mountains": ["mountains", "mountain range", "alpine valley", "peaks", "mountain valley", "highlands", "snowy peaks",
                  "rocky mountains", "mountain pass", "alps", "summits", "craggy peaks", "massif", "high mountains",
                  "mountain landscape", "ridge", "sierra", "rugged peaks", "valley among peaks", "mountain basin"],
    "canyon": ["canyon", "mesa", "red rock canyon", "gorge", "ravine", "butte country", "desert canyon", "badlands",
               "plateau", "sandstone canyon", "red cliffs", "mesa country", "slot canyon", "canyonlands", "rock formations",
               "escarpment", "tablelands", "layered cliffs", "arroyo", "red rock desert"],
    "swamp": ["swamp", "marsh", "bog", "wetland", "bayou", "fen", "mire", "marshland", "swampland", "quagmire",
              "mangrove swamp", "murky wetland", "everglade", "morass", "slough", "boggy lowland",
              "cypress swamp", "reed marsh", "backwater"],
}
BIOME_ADJ = {
    "temperate_forest": ["wooded", "leafy", "forested", "green", "verdant"],
    "pine_forest": ["piney", "evergreen", "coniferous", "boreal", "pine-covered"],
    "desert": ["arid", "parched", "sandy", "sun-baked", "dry", "scorched"],
    "tundra": ["icy", "snowbound", "glacial", "frozen", "frosty", "wintry"],
    "meadow": ["grassy", "pastoral", "open", "rolling", "flowery"],
    "beach": ["tropical", "sandy", "coastal", "sunny", "balmy"],
    "mountains": ["alpine", "mountainous", "rugged", "craggy", "lofty"],
    "canyon": ["rocky", "red-rock", "eroded", "sandstone", "layered"],
    "swamp": ["swampy", "marshy", "boggy", "murky", "waterlogged"],
}
TIME_TAIL = {
    "day": ["during the day", "in daylight", "at midday", "at noon", "on a sunny afternoon", "in broad daylight",
            "under a blue sky", "in the afternoon", "in the morning sun", "by day", "in bright sunshine", "on a bright day",
            "under the midday sun", "in full sun", "on a summer day", "in the daytime", "under a high sun", "late morning"],
    "sunset": ["at sunset", "at dusk", "at twilight", "at sundown", "in the golden hour", "in the evening glow",
               "at nightfall", "in the evening", "under an orange sky", "as the sun sets", "at the end of the day",
               "under a fiery sky", "with a setting sun", "in late evening light", "at gloaming", "at eventide",
               "under a crimson sky", "as the sun goes down", "in the afterglow", "bathed in sunset light"],
    "night": ["at night", "at midnight", "under the stars", "by moonlight", "under a starry sky", "in the dead of night",
              "at nighttime", "under the moon", "beneath a starlit sky", "in the dark", "under a full moon", "after dark",
              "in the small hours", "on a moonlit night", "under the milky way", "late at night", "by starlight",
              "beneath the night sky", "in darkness", "under a night sky"],
    "dawn": ["at dawn", "at sunrise", "at first light", "at daybreak", "in the early morning", "as the sun rises",
             "under a pink dawn sky", "in the morning twilight", "at break of day", "at sunup", "in the dawn light",
             "as day breaks", "at cockcrow", "in the pale morning light", "under a rosy sky", "in the first light of day",
             "with the sun just rising", "in early light", "before the morning", "at aurora"],
}
TIME_ADJ = {
    "day": ["sunny", "sunlit", "daytime", "bright", "sun-drenched", "midday", "noon"],
    "sunset": ["sunset", "dusky", "twilight", "golden-hour", "evening", "sundown", "dusk"],
    "night": ["moonlit", "starlit", "nighttime", "midnight", "night", "starry", "dark"],
    "dawn": ["dawn", "sunrise", "early-morning", "daybreak", "dawn-lit", "rosy", "morning"],
}
WEATHER_TAIL = {
    "clear": ["under a clear sky", "on a clear day", "in fine weather", "with clear skies", "under cloudless skies",
              "in calm weather", "on a fair day", "with a few clouds"],
    "fog": ["in thick fog", "in the mist", "shrouded in fog", "in heavy mist", "under a blanket of fog", "in a haze",
            "wrapped in mist", "in dense fog", "in low fog", "veiled in mist", "in a pea-soup fog", "in drifting mist",
            "with fog rolling in", "lost in the fog", "in morning mist", "in a foggy haze"],
    "snow": ["in falling snow", "during a snowfall", "in a snowstorm", "with snow falling", "in a blizzard",
             "under falling snowflakes", "in the snow", "during a snow shower", "as snow falls", "in a flurry of snow",
             "in heavy snow", "in a light snowfall", "under snow", "while it snows", "in winter snow", "in a snow squall"],
    "rain": ["in the rain", "under overcast skies", "in a downpour", "during a rainstorm", "in drizzle", "under grey clouds",
             "on a rainy day", "in pouring rain", "under a heavy sky", "in a storm", "with rain falling", "under dark clouds",
             "in a light rain", "during a shower", "on an overcast day", "in the wet"],
}
WEATHER_ADJ = {
    "clear": ["clear", "cloudless", "calm", "fair"],
    "fog": ["foggy", "misty", "hazy", "fog-bound", "murky", "smoky", "mist-covered"],
    "snow": ["snowy", "snow-covered", "snowbound", "wintry", "frosted", "snow-dusted", "blizzardy"],
    "rain": ["rainy", "overcast", "stormy", "drizzly", "grey", "wet", "cloudy", "gloomy"],
}
WATER_WITH = {
    "lake": ["with a lake", "by a lake", "beside a still lake", "around a pond", "with a mountain tarn", "by a small lake",
             "with a pond", "on the shore of a lake", "around a calm lake", "with a reflecting pool", "by a tarn",
             "next to a lake", "with a lagoon", "beside a mere", "with a waterhole", "around a quiet pond", "by a loch",
             "with a lake in the middle"],
    "river": ["with a river", "by a river", "along a winding river", "with a creek", "beside a brook", "with a stream",
              "along a stream", "with a meandering river", "crossed by a river", "by a creek", "with a brook running through",
              "along the riverbank", "with a rushing stream", "split by a river", "beside a rill", "with a flowing river",
              "along a canal-like river", "by a burn"],
    "ocean": ["by the sea", "on the coast", "by the ocean", "on a rocky coast", "on the seashore", "overlooking the ocean",
              "with ocean waves", "along the coastline", "by a bay", "on the shore", "facing the sea", "by the open sea",
              "on a seaside cliff", "with the sea beyond", "on the shoreline", "beside the ocean", "at the water's edge",
              "by a lagoon"],
}
VEG_WITH = {
    "none": ["with no trees", "without vegetation", "with bare ground", "without a single tree", "with nothing growing",
             "bare of plants"],
    "sparse": ["with scattered trees", "with a few trees", "with a lone tree or two", "with sparse vegetation",
               "with patchy shrubs", "with some bushes", "dotted with trees", "with thin vegetation",
               "with isolated trees", "with a handful of trees"],
    "dense": ["thick with trees", "with dense vegetation", "full of trees", "with lush greenery", "overgrown with plants",
              "with thick undergrowth", "covered in trees", "with dense woods", "crowded with trees", "with rich foliage",
              "thickly wooded", "with abundant plants"],
}
VEG_ADJ = {
    "none": ["treeless", "bare", "barren", "empty", "desolate"],
    "sparse": ["sparse", "open", "scrubby", "thinly wooded"],
    "dense": ["lush", "overgrown", "dense", "verdant", "thickly wooded", "jungle-like"],
}
STRUCTURE_NOUN = {
    "cabin": ["a cabin", "a log cabin", "a wooden cabin", "a hut", "a cottage", "a small house", "a shack", "a lodge",
              "a hunting cabin", "a little cabin", "a shed", "a farmhouse", "a chalet", "a homestead", "a cozy cabin",
              "a hermit's hut"],
    "village": ["a village", "a small village", "a hamlet", "a few houses", "a settlement", "a fishing village",
                "a cluster of cottages", "a little town", "a farming village", "houses", "a cluster of houses",
                "a mountain village", "a quiet village", "a handful of homes", "a township", "a medieval village"],
    "castle": ["a castle", "a fortress", "a stone castle", "a keep", "a citadel", "a tower", "a watchtower",
               "a medieval castle", "a stronghold", "a fort", "castle towers", "a walled castle", "a bastion",
               "a great keep", "a palace fortress", "a turreted castle"],
    "ruins": ["ruins", "ancient ruins", "crumbling ruins", "broken walls", "old ruins", "a ruined temple",
              "stone ruins", "the remains of a building", "toppled columns", "a fallen temple", "weathered ruins",
              "forgotten ruins", "a collapsed fort", "overgrown ruins", "ancient columns", "a ruined abbey"],
    "lighthouse": ["a lighthouse", "a tall lighthouse", "a striped lighthouse", "a beacon", "a lighthouse tower",
                   "a red and white lighthouse", "a harbour light", "a coastal beacon", "a light tower",
                   "a lonely lighthouse", "a lighthouse and keeper's cottage", "a signal tower"],
}
SEASON_TAIL = {
    "summer": ["in summer", "in midsummer", "in high summer", "on a summer's day"],
    "autumn": ["in autumn", "in fall", "with autumn leaves", "with fall colors", "in the autumn", "with red and gold leaves",
               "with golden foliage", "in late autumn", "among falling leaves", "in the fall season", "with orange leaves",
               "with turning leaves"],
    "spring": ["in spring", "in springtime", "with spring blossom", "with blooming trees", "in early spring",
               "among cherry blossoms", "with fresh green leaves", "in bloom", "in the spring", "with flowers in bloom",
               "with pink blossoms", "in april"],
}
SEASON_ADJ = {
    "summer": ["summer", "summery", "midsummer"],
    "autumn": ["autumn", "autumnal", "fall", "golden", "russet"],
    "spring": ["spring", "springtime", "blossoming", "blooming", "vernal"],
}
WRAPPERS = ["{}", "{}", "{}", "{}", "a 3d world: {}", "a 3d scene of {}", "a landscape of {}", "a view of {}",
            "an aerial view of {}", "a photo of {}", "a render of {}", "a diorama of {}", "generate {}", "create {}",
            "show me {}", "imagine {}", "a game level with {}", "a fantasy scene: {}", "a painting of {}",
            "a gaussian splat world of {}", "scene: {}", "a wide shot of {}", "a peaceful world: {}",
            "concept art of {}", "a tiny world of {}", "make {}", "build me {}", "a virtual world of {}",
            "a vr environment of {}", "an environment with {}", "a cinematic view of {}", "i want {}"]
SHAPES = ("adjectives", "structure_first", "terse", "tags", "fronted", "there_is", "rich", "with_list", "noun_only_adj")

Phrases = dict[str, list[str]]


def _stable(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") / 2**64


def _split_list(items: list[str], key: str) -> tuple[list[str], list[str]]:
    """(train, heldout): about 20% held out by a stable hash; each side keeps at least one item."""
    held = [p for p in items[1:] if _stable(key + "|" + p) < 0.2]
    if not held and len(items) >= 4:
        held = [max(items[1:], key=lambda p: _stable(key + "|" + p))]
    train = [p for p in items if p not in held]
    return train, held


def _split_table(table: dict[str, list[str]], name: str) -> tuple[Phrases, Phrases]:
    train, held = {}, {}
    for value, items in table.items():
        train[value], held[value] = _split_list(items, f"{name}|{value}")
        held[value] = held[value] or train[value]  # a short list is shared (only for tiny lists)
    return train, held


_TABLES = {
    "biome_noun": BIOME_NOUN, "biome_adj": BIOME_ADJ, "time_tail": TIME_TAIL, "time_adj": TIME_ADJ,
    "weather_tail": WEATHER_TAIL, "weather_adj": WEATHER_ADJ, "water_with": WATER_WITH, "veg_with": VEG_WITH,
    "veg_adj": VEG_ADJ, "structure": STRUCTURE_NOUN, "season_tail": SEASON_TAIL, "season_adj": SEASON_ADJ,
}  # fmt: skip
_VOCAB: dict[str, tuple[Phrases, Phrases]] = {name: _split_table(t, name) for name, t in _TABLES.items()}
#: the phrase tables that say each attribute (`WorldSpec` field -> table names; time, weather, season and
#: vegetation: the adjective table, then the tail table)
ATTRIBUTE_TABLES: dict[str, tuple[str, ...]] = {
    "biome": ("biome_noun", "biome_adj"), "water": ("water_with",), "vegetation": ("veg_adj", "veg_with"),
    "structure": ("structure",), "time": ("time_adj", "time_tail"), "weather": ("weather_adj", "weather_tail"),
    "season": ("season_adj", "season_tail"),
}  # fmt: skip
_WRAPPERS = _split_list(WRAPPERS[3:], "wrapper")
_WRAPPERS = (["{}"] * 3 + _WRAPPERS[0], _WRAPPERS[1])
HELDOUT_SHAPES = frozenset({"there_is", "noun_only_adj"})


def phrasings(table: str, value: str, *, split: Split = "train") -> list[str]:
    """The phrasings of one attribute value in a split (for evaluation and tests)."""
    return list(_VOCAB[table][0 if split == "train" else 1][value])


def heldout_phrasings() -> dict[str, dict[str, list[str]]]:
    """Every held-out phrasing: table -> value -> phrases."""
    return {name: {v: list(p) for v, p in pair[1].items()} for name, pair in _VOCAB.items()}


def describe(spec: WorldSpec, rng: np.random.Generator, *, split: Split = "train") -> str:
    """One prompt for `spec`. "train" uses only training phrasings and refuses held-out combinations;
    "heldout" uses only held-out phrasings, wrappers and shapes."""
    return describe_said(spec, rng, split=split)[0]


def describe_said(spec: WorldSpec, rng: np.random.Generator, *, split: Split = "train") -> tuple[str, frozenset[str]]:
    """`describe`, and which attributes the text says (names of `WorldSpec` fields; always "biome").

    The rest go unsaid: a sentence shape may also drop a phrase that was picked (a terse
    prompt keeps two tails, a noun phrase two adjectives), and then its attribute is unsaid too.
    """
    if split not in ("train", "heldout"):
        raise UsageError(f"split must be 'train' or 'heldout', got {split!r}")
    if split == "train" and spec.combination in HELDOUT_COMBINATIONS:
        raise UsageError(f"{spec.combination} is a held-out combination: caption it with split='heldout'")
    side = 0 if split == "train" else 1
    pick = lambda table, value: str(rng.choice(_VOCAB[table][side][value]))  # noqa: E731
    shapes = [s for s in SHAPES if (s in HELDOUT_SHAPES) == (split == "heldout")]
    if split == "heldout":
        shapes += ["adjectives", "structure_first", "terse"]  # held-out shapes alone would be too few
    shape = str(rng.choice(shapes))

    say = {  # which attributes are said; the rest go unsaid
        "time": rng.uniform() < (0.85 if spec.time != "day" else 0.45),
        "weather": rng.uniform() < (0.8 if spec.weather != "clear" else 0.2),
        "water": spec.water != "none" and rng.uniform() < 0.85,
        "vegetation": rng.uniform() < (0.5 if spec.vegetation != "sparse" else 0.25),
        "structure": spec.structure != "none" and rng.uniform() < 0.9,
        "season": spec.season != "summer" and rng.uniform() < 0.8 or spec.season == "summer" and rng.uniform() < 0.05,
    }
    biome = pick("biome_noun", spec.biome)
    # (attribute, phrase) pairs, so that what a shape keeps can be told apart from what it drops
    adj: list[tuple[str, str]] = []
    tails: list[tuple[str, str]] = []
    for attr in ("time", "weather", "season", "vegetation"):
        adj_table, tail_table = ATTRIBUTE_TABLES[attr]
        value = getattr(spec, attr)
        if say[attr]:
            (adj.append((attr, pick(adj_table, value))) if rng.uniform() < 0.4 else tails.append((attr, pick(tail_table, value))))
    if rng.uniform() < 0.2:
        adj.append(("biome", pick("biome_adj", spec.biome)))
    water = pick("water_with", spec.water) if say["water"] else None
    structure = pick("structure", spec.structure) if say["structure"] else None
    if water:
        tails.insert(int(rng.integers(len(tails) + 1)), ("water", water))
    rng.shuffle(adj)
    noun = " ".join([a for _, a in adj[:2]] + [biome])
    tail_text = [t for _, t in tails]
    said = {"biome"} | {a for a, _ in adj[:2]} | {a for a, _ in tails} | ({"structure"} if structure else set())

    if shape == "terse":
        words = [biome] + tail_text[:2]
        said = {"biome"} | {a for a, _ in tails[:2]}
        if structure and rng.uniform() < 0.5:
            words.insert(0, structure.split(" ", 1)[1] if structure.startswith(("a ", "an ")) else structure)
            said.add("structure")
        text = " ".join(words)
    elif shape == "tags":
        items = [biome] + [_bare(t) for t in tail_text] + [a for _, a in adj] + ([_bare(structure)] if structure else [])
        said |= {a for a, _ in adj}
        rng.shuffle(items[1:])  # shuffles a copy: kept as it is, so that every caption stays the same
        text = ", ".join(items)
    elif shape == "structure_first" and structure:
        text = f"{structure} in {_article(noun)} {' '.join(tail_text)}"
    elif shape == "fronted" and tails:
        head = tail_text.pop(0)
        rest = f"{_article(noun)}" + (f" with {_bare(structure)}" if structure else "")
        text = f"{head}, {rest} {' '.join(tail_text)}"
    elif shape == "there_is" and structure:
        text = f"there is {structure} in {_article(noun)} {' '.join(tail_text)}"
    elif shape == "rich" and structure:
        text = f"{structure} standing in {_article(noun)} {', '.join(tail_text)}" if tails else f"{structure} in {_article(noun)}"
    elif shape == "with_list" and (structure or tails):
        text = f"{_article(noun)}" + (f" with {_bare(structure)}" if structure else "") + (", " + ", ".join(tail_text) if tails else "")
    elif shape == "noun_only_adj":
        text = " ".join([a for _, a in adj] + [biome]) + (f" with {_bare(structure)}" if structure else "") + (f" {water}" if water else "")
        said = {"biome"} | {a for a, _ in adj} | ({"structure"} if structure else set()) | ({"water"} if water else set())
    else:  # adjectives
        text = f"{_article(noun)}" + (f" with {_bare(structure)}" if structure else "") + (" " + " ".join(tail_text) if tails else "")
    wrapper = str(rng.choice(_WRAPPERS[side])) if shape not in ("fronted", "tags") else "{}"
    text = " ".join(wrapper.format(text).split())
    return text.strip(" ,"), frozenset(said)


def captions(spec: WorldSpec, rng: np.random.Generator, n: int, *, split: Split = "train") -> list[str]:
    """`n` prompts for one spec, distinct where the vocabulary allows."""
    out: list[str] = []
    for _ in range(n * 4):
        c = describe(spec, rng, split=split)
        if c not in out:
            out.append(c)
        if len(out) == n:
            break
    while len(out) < n:
        out.append(describe(spec, rng, split=split))
    return out


def _article(noun: str) -> str:
    if noun.endswith("s") and not noun.endswith(("ss", "is", "us")) or noun in ("taiga", "tundra", "countryside", "badlands"):
        return noun if noun.endswith("s") else "the " + noun if noun in ("taiga", "tundra") else noun
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _bare(phrase: str) -> str:
    for prefix in ("with ", "a ", "an "):
        if phrase.startswith(prefix):
            return phrase[len(prefix) :]
    return phrase


__all__ = ["ATTRIBUTE_TABLES", "HELDOUT_SHAPES", "captions", "describe", "describe_said", "heldout_combinations", "heldout_phrasings", "phrasings"]

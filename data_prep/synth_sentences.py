"""Sentence generators for the synthetic corpus: grammar templates filled from word lists.

English: smart-home commands, times, numbers spelled out as words, names, cities and simple
stories (a few hundred words, millions of distinct sentences), so that a word LM trained on the
training sentences helps on unseen test sentences built from the same grammar.
Mandarin: the same idea with a few hundred common characters, no spaces."""
from __future__ import annotations

import random
import re

# --- English -----------------------------------------------------------------------------------

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """0 <= n < 1000 as English words: 23 -> "twenty three", 105 -> "one hundred and five"."""
    if not 0 <= n < 1000:
        raise ValueError(f"number out of range: {n}")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))


def _time(rng: random.Random) -> str:
    hour = number_words(rng.randint(1, 12))
    kind = rng.random()
    if kind < 0.15:
        return f"{hour} o'clock"
    if kind < 0.25:
        return f"half past {hour}"
    if kind < 0.33:
        return f"a quarter {rng.choice(['to', 'past'])} {hour}"
    if kind < 0.37:
        return rng.choice(["noon", "midnight"])
    minute = rng.randint(1, 59)
    minutes = f"oh {ONES[minute]}" if minute < 10 else number_words(minute)
    return f"{hour} {minutes}"


def _digits(rng: random.Random, n: int) -> str:
    return " ".join(ONES[rng.randint(0, 9)] for _ in range(n))


EN_SLOTS: dict[str, list[str]] = {
    "name": "john mary alice david sarah peter emma james olivia michael sophia daniel laura robert "
            "anna thomas lucy william grace henry kate george ellen paul nina mark julia steven "
            "rachel brian helen oscar diana victor susan frank claire simon amy martin".split(),
    "room": ["kitchen", "living room", "bedroom", "bathroom", "garage", "office", "hallway",
             "dining room", "basement", "garden", "attic", "guest room"],
    "device": ["lights", "lamp", "fan", "heater", "television", "radio", "oven", "dishwasher",
               "washing machine", "air conditioner", "coffee maker", "computer", "printer",
               "speaker"],
    "onoff": ["turn on", "turn off", "switch on", "switch off"],
    "please": ["please", "could you", "can you", "would you", "hey", "now"],
    "color": "red blue green yellow black white brown orange purple pink grey silver".split(),
    "animal": "fox dog cat horse bird rabbit mouse bear duck goat sheep cow lion tiger frog owl "
              "wolf deer monkey snake".split(),
    "animals": "foxes dogs cats horses birds rabbits mice bears ducks goats sheep cows lions tigers "
               "frogs owls wolves deer monkeys snakes".split(),
    "adj": "quick lazy small big old young happy sleepy clever quiet noisy brave tiny hungry tired "
           "friendly angry gentle wild funny".split(),
    "action": ["jumped over", "ran past", "looked at", "sat next to", "walked around", "chased",
               "followed", "found", "watched", "climbed onto", "hid behind", "waited for"],
    "object": "fence river barn tree bridge wall hill road gate pond house car boat table chair "
              "box".split(),
    "when": ["today", "tomorrow", "tonight", "this morning", "this afternoon", "this evening",
             "this weekend", "next week", "on monday", "on tuesday", "on wednesday", "on thursday",
             "on friday", "on saturday", "on sunday", "later"],
    "month": "january february march april may june july august september october november "
             "december".split(),
    "food": "bread milk eggs apples bananas rice cheese butter tomatoes potatoes chicken soup "
            "pasta oranges sugar onions carrots cookies cake fish".split(),
    "drink": ["coffee", "tea", "water", "milk", "juice", "hot chocolate", "lemonade"],
    "city": "london paris boston chicago tokyo berlin madrid denver dallas seattle toronto sydney "
            "dublin rome vienna miami atlanta phoenix oslo cairo".split(),
    "genre": "jazz rock classical country pop blues folk reggae piano dance".split(),
    "weather": ["rain", "snow", "be sunny", "be windy", "be cold", "be warm", "be cloudy"],
    "relative": ["mother", "father", "sister", "brother", "aunt", "uncle", "grandmother",
                 "grandfather", "friend", "boss", "doctor", "neighbor", "teacher", "cousin"],
    "message": ["i will be late", "see you soon", "call me back", "dinner is ready",
                "i'm on my way", "happy birthday", "thank you", "don't wait for me",
                "the door is open", "let's meet at the station", "i can't come today"],
    "street": "oak maple pine elm cedar high church park main market river lake".split(),
    "place": ["barn", "field", "garden", "forest", "zoo", "park", "yard", "village"],
    "vehicle": ["car", "bike", "boat", "truck", "van", "scooter", "bus ticket", "house"],
    "errand": ["feed the cat", "water the plants", "take out the trash", "pay the bills",
               "walk the dog", "call the doctor", "pick up the kids", "lock the door",
               "buy a present", "clean the kitchen", "wash the car", "charge my phone"],
    "unit": ["seconds", "minutes", "hours"],
    "command": ["stop the music", "play the next song", "pause the video", "what time is it",
                "turn it up", "turn the volume down", "cancel my alarm", "read me the news",
                "how are you today", "tell me a joke", "what's on my calendar",
                "open the garage door", "close the front door", "lock all the doors",
                "start the dishwasher", "good night", "i'm going to bed", "let's go",
                "don't forget the keys", "where are my glasses", "is the oven still on",
                "who won the game last night", "what's the date today", "skip this song",
                "repeat that please", "turn off all the lights"],
}

EN_NUMBERS = {
    "number": lambda rng: number_words(rng.randint(2, 99)),
    "small": lambda rng: number_words(rng.randint(2, 12)),
    "temp": lambda rng: number_words(rng.randint(15, 30)),
    "percent": lambda rng: number_words(rng.choice(range(10, 100, 5))),
    "house_no": lambda rng: number_words(rng.randint(1, 999)),
    "time": _time,
    "phone": lambda rng: _digits(rng, 7),
    "year": lambda rng: rng.choice(["nineteen", "twenty"]) + " " + number_words(rng.randint(10, 99)),
}

EN_TEMPLATES = [
    "{please} {onoff} the {room} {device}",
    "{onoff} the {device} in the {room}",
    "{please} {onoff} the {device}",
    "call {name} at {time}",
    "call my {relative} {when}",
    "remind me to call {name} {when}",
    "set a timer for {number} {unit}",
    "set an alarm for {time} {when}",
    "wake me up at {time}",
    "the {adj} {color} {animal} {action} the {adj2} {animal2}",
    "the {adj} {animal} {action} the {object}",
    "a {adj} {animal} {action} the {color} {object}",
    "remind me to buy {food} and {food2} {when}",
    "add {food} to my shopping list",
    "we need {small} {food} and some {food2}",
    "what is the weather like in {city} {when}",
    "will it {weather} in {city} {when}",
    "what's the temperature in {city}",
    "send a message to {name} saying {message}",
    "tell {name} {message}",
    "play some {genre} music in the {room}",
    "play {genre} music {when}",
    "set the {room} temperature to {temp} degrees",
    "{name} has {number} {animals}",
    "how far is it from {city} to {city2}",
    "book a flight to {city} {when}",
    "{name} and {name2} went to {city} in {month}",
    "book a table for {small} at {time}",
    "the meeting with {name} starts at {time}",
    "move my meeting with {name} to {when}",
    "dim the {room} lights to {percent} percent",
    "my phone number is {phone}",
    "i would like {small} cups of {drink} please",
    "{name} lives at {house_no} {street} street",
    "how many {animals} are in the {place}",
    "{name} said the {animal} was {adj}",
    "my {relative} is coming to visit {when}",
    "my {relative} lives in {city}",
    "i saw a {adj} {animal} near the {object}",
    "what time is it in {city}",
    "{name}'s {relative} bought a {color} {vehicle}",
    "don't forget to {errand} {when}",
    "remind me to {errand} at {time}",
    "{name} was born in {month} {year}",
    "{command}",
]

# --- Mandarin ----------------------------------------------------------------------------------

ZH_DIGITS = "零一二三四五六七八九"


def zh_number(n: int) -> str:
    """0 <= n < 100 in characters: 23 -> 二十三, 10 -> 十."""
    if n < 10:
        return ZH_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else ZH_DIGITS[tens]) + "十" + ("" if ones == 0 else ZH_DIGITS[ones])


def _zh_clock(rng: random.Random) -> str:
    hour = "两" if (h := rng.randint(1, 12)) == 2 else zh_number(h)
    kind = rng.random()
    if kind < 0.3:
        return f"{hour}点"
    if kind < 0.5:
        return f"{hour}点半"
    return f"{hour}点{zh_number(rng.randint(10, 59))}分"


ZH_SLOTS: dict[str, list[str]] = {
    "name": ["王明", "李华", "张伟", "刘洋", "陈静", "小红", "小明", "老王", "小李", "马丽",
             "赵军", "周平", "黄英", "林芳"],
    "person": ["老师", "妈妈", "爸爸", "哥哥", "姐姐", "弟弟", "妹妹", "朋友", "同学", "医生"],
    "place": ["北京", "上海", "学校", "公园", "医院", "商店", "饭店", "图书馆", "火车站", "机场",
              "银行", "超市", "办公室", "南京", "广州", "西安"],
    "time": ["今天", "明天", "昨天", "上午", "下午", "晚上", "早上", "周末", "星期一", "星期二",
             "星期三", "星期四", "星期五", "星期六", "星期天", "现在", "后天"],
    "food": ["苹果", "米饭", "面条", "鸡蛋", "水果", "包子", "饺子", "西瓜", "鱼", "面包",
             "青菜", "牛肉"],
    "drink": ["茶", "咖啡", "水", "牛奶", "果汁", "红茶"],
    "activity": ["看书", "写字", "唱歌", "跳舞", "跑步", "游泳", "打球", "上课", "工作", "吃饭",
                 "买东西", "看电视", "听音乐", "学习中文", "做饭", "开会", "休息"],
    "room": ["客厅", "卧室", "厨房", "书房", "门口"],
    "device": ["灯", "电视", "空调", "电脑", "风扇", "窗户", "门"],
    "onoff": ["打开", "关上"],
    "weather": ["很好", "很热", "很冷", "不错", "不好", "很暖和"],
    "sky": ["下雨", "下雪", "刮风", "是晴天", "是阴天"],
    "adj": ["很好", "很大", "很小", "很高兴", "很忙", "很漂亮", "很好吃", "太贵了", "很便宜"],
    "job": ["老师", "医生", "学生", "司机", "工人", "经理"],
    "animal": ["猫", "狗", "鸟", "马", "鱼", "小猫", "小狗"],
    "color": ["红色", "白色", "黑色", "蓝色", "黄色", "绿色"],
    "thing": ["书", "衣服", "车", "手机", "电脑", "桌子", "椅子", "杯子"],
    "phrase": ["谢谢你", "你好吗", "我很好", "对不起", "没关系", "再见", "请坐", "欢迎你来我家",
               "现在几点了", "你叫什么名字", "我不知道", "请再说一遍", "我们走吧", "祝你生日快乐",
               "请关上所有的灯", "把声音开大一点", "把声音关小一点", "明天见"],
}

ZH_NUMBERS = {
    "num": lambda rng: "两" if (n := rng.randint(2, 10)) == 2 else zh_number(n),
    "age": lambda rng: zh_number(rng.randint(3, 90)),
    "minutes": lambda rng: zh_number(rng.randint(2, 60 - 1)),
    "clock": _zh_clock,
    "price": lambda rng: zh_number(rng.randint(2, 99)),
}

ZH_TEMPLATES = [
    "{name}{time}去{place}",
    "{name}{time}要去{place}{activity}",
    "我想吃{food}",
    "我想喝{drink}",
    "请{onoff}{room}的{device}",
    "{name}在{place}{activity}",
    "{person}在{room}{activity}",
    "{time}天气{weather}",
    "{time}会{sky}吗",
    "{name}买了{num}个{food}",
    "我要{num}杯{drink}",
    "请在{clock}叫我起床",
    "{name}的{person}是{job}",
    "我们{time}一起去{place}吧",
    "{place}在哪里",
    "{place}离这里远吗",
    "{name}今年{age}岁",
    "{name}喜欢{activity}",
    "这个{thing}多少钱",
    "这个{thing}{price}块钱",
    "给{name}打电话",
    "{time}{clock}给{person}打电话",
    "设置一个{minutes}分钟的定时器",
    "{name}家有{num}只{animal}",
    "我有一个{color}的{thing}",
    "{person}说{food}{adj}",
    "{time}{clock}在{place}开会",
    "{name}和{name2}{time}去{place}",
    "{phrase}",
]

_SLOT = re.compile(r"\{([a-z_]+?)\d*\}")


class SentenceGenerator:
    """Random sentences from `templates`; slot `{x}` or `{x2}` is filled from the list or
    function named `x`."""

    def __init__(self, templates: list[str], slots: dict[str, list[str]], numbers: dict):
        self.templates, self.slots, self.numbers = templates, slots, numbers
        for template in templates:
            for name in _SLOT.findall(template):
                if name not in slots and name not in numbers:
                    raise ValueError(f"template {template!r}: unknown slot {name!r}")

    def __call__(self, rng: random.Random) -> str:
        template = rng.choice(self.templates)

        def fill(match: re.Match) -> str:
            name = match.group(1)
            return self.numbers[name](rng) if name in self.numbers else rng.choice(self.slots[name])

        return " ".join(_SLOT.sub(fill, template).split())


def generator(language: str) -> SentenceGenerator:
    if language == "en":
        return SentenceGenerator(EN_TEMPLATES, EN_SLOTS, EN_NUMBERS)
    if language == "zh":
        return SentenceGenerator(ZH_TEMPLATES, ZH_SLOTS, ZH_NUMBERS)
    raise ValueError(f"unknown language {language!r} (expected 'en' or 'zh')")

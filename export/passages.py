"""Hand-written English passages with questions whose answers are spans of the passage.

Written for distilrt as material for the calibration and evaluation sets (:mod:`distilrt.export.textset`).
The passages cover many registers (encyclopaedic, news, technical, instructions, reviews, letters) so the
quantiser sees the range of activations real text produces.  Each entry: (title, passage, questions), each
question (question, answer) with the answer copied verbatim from the passage.
"""

from __future__ import annotations

Passage = tuple[str, str, tuple[tuple[str, str], ...]]

PASSAGES: tuple[Passage, ...] = (
    ("Rhine",
     "The Rhine rises in the Swiss Alps and flows for about 1,230 kilometres before it reaches the North Sea in the "
     "Netherlands. For centuries it has been one of the busiest trade routes in Europe. Barges carry coal, grain and "
     "containers between Basel and Rotterdam. Along the middle course, steep vineyards and castles line the valley, "
     "which is protected as a World Heritage Site.",
     (("Where does the Rhine rise?", "the Swiss Alps"),
      ("How long is the Rhine?", "about 1,230 kilometres"),
      ("Which sea does the Rhine flow into?", "the North Sea"),
      ("What do barges carry on the river?", "coal, grain and containers"))),
    ("Photosynthesis",
     "Photosynthesis is the process by which green plants turn light into chemical energy. Inside the chloroplasts, "
     "the pigment chlorophyll absorbs mostly red and blue light and reflects green, which is why leaves look green. "
     "The plant takes in carbon dioxide through small pores called stomata and releases oxygen as a by-product. "
     "The sugars it makes are stored as starch or used to build cellulose.",
     (("What absorbs light inside the chloroplasts?", "the pigment chlorophyll"),
      ("What are the small pores on leaves called?", "stomata"),
      ("What gas do plants release during photosynthesis?", "oxygen"),
      ("How are the sugars stored?", "as starch"))),
    ("Printing press",
     "Around 1440, Johannes Gutenberg developed a printing press with movable metal type in Mainz. His method combined "
     "a screw press, an oil-based ink and a hand mould for casting letters quickly. The Gutenberg Bible, finished in "
     "about 1455, is the most famous book he printed. Within fifty years, printing shops had opened in more than two "
     "hundred European cities, and the price of books fell sharply.",
     (("Who developed the printing press with movable metal type?", "Johannes Gutenberg"),
      ("In which city did Gutenberg work?", "Mainz"),
      ("When was the Gutenberg Bible finished?", "about 1455"),
      ("What happened to the price of books?", "fell sharply"))),
    ("Marathon results",
     "Kenyan runner Grace Wanjiru won the city marathon on Sunday in two hours, twenty-one minutes and eight seconds, "
     "breaking the course record by almost a minute. She pulled away from the leading group at the thirty-kilometre "
     "mark and finished alone. Temperatures stayed below twelve degrees for most of the race, which organisers said "
     "helped the fast times. More than 31,000 runners took part.",
     (("Who won the city marathon?", "Grace Wanjiru"),
      ("Where did the winner pull away from the leading group?", "at the thirty-kilometre mark"),
      ("How many runners took part?", "More than 31,000"),
      ("What helped the fast times according to organisers?", "Temperatures stayed below twelve degrees"))),
    ("Sourdough",
     "To bake a basic sourdough loaf, mix 500 grams of bread flour with 350 grams of water and leave it to rest for "
     "an hour. Then add 100 grams of active starter and 10 grams of salt, and knead until the dough is smooth. Let it "
     "rise at room temperature for four to six hours, folding it every half hour at first. Shape the loaf, proof it "
     "overnight in the fridge, and bake it in a covered pot at 250 degrees for forty minutes.",
     (("How much water goes into the dough?", "350 grams"),
      ("How long should the flour and water rest?", "for an hour"),
      ("Where is the loaf proofed overnight?", "in the fridge"),
      ("At what temperature is the bread baked?", "250 degrees"))),
    ("Laptop review",
     "The new laptop is light at 1.2 kilograms and its aluminium case feels solid. The screen is bright and sharp, "
     "although its glossy finish reflects overhead lights. Battery life is the highlight: in our video test it lasted "
     "fourteen hours. The keyboard is shallow but quiet, and the two USB-C ports are the only connections, so many "
     "people will need an adapter. At its launch price it is good value for students.",
     (("How much does the laptop weigh?", "1.2 kilograms"),
      ("How long did the battery last in the video test?", "fourteen hours"),
      ("What is the problem with the screen?", "its glossy finish reflects overhead lights"),
      ("Who is the laptop good value for?", "students"))),
    ("Volcanoes",
     "A volcano forms where molten rock, called magma, reaches the surface of the Earth. Once it erupts, the molten "
     "rock is known as lava. Most volcanoes sit along the edges of tectonic plates, especially around the Pacific "
     "Ocean in a belt known as the Ring of Fire. Some, like those of Hawaii, form over hot spots far from any plate "
     "boundary. Ash from large eruptions can cool the climate for a year or more.",
     (("What is molten rock called before it erupts?", "magma"),
      ("What is the belt of volcanoes around the Pacific called?", "the Ring of Fire"),
      ("Where do the volcanoes of Hawaii form?", "over hot spots"),
      ("What can ash from large eruptions do?", "cool the climate for a year or more"))),
    ("Library letter",
     "Dear residents, the central library will close for renovation from the first of March until the end of August. "
     "During this time, books can be borrowed and returned at the temporary branch in the old post office on Mill "
     "Street. Loans due while the library is closed will be extended automatically. The renovated building will have "
     "a larger children's section, a café and forty new study desks. Thank you for your patience.",
     (("When will the library close?", "from the first of March until the end of August"),
      ("Where is the temporary branch?", "in the old post office on Mill Street"),
      ("What happens to loans due during the closure?", "extended automatically"),
      ("How many new study desks will there be?", "forty"))),
    ("Honeybees",
     "A honeybee colony has one queen, a few hundred male drones and tens of thousands of female workers. Workers "
     "clean the hive, feed the larvae, build wax comb and collect nectar and pollen. Returning foragers perform a "
     "waggle dance that tells other bees the direction and distance of food. In winter, the bees cluster together "
     "and shiver their flight muscles to keep the queen warm.",
     (("How many queens does a colony have?", "one"),
      ("What do returning foragers perform?", "a waggle dance"),
      ("What does the waggle dance tell other bees?", "the direction and distance of food"),
      ("How do bees keep the queen warm in winter?", "shiver their flight muscles"))),
    ("Password advice",
     "Security experts now recommend long passphrases over short passwords full of symbols. A phrase of four or five "
     "unrelated words is easier to remember and much harder to guess. Use a different password for every account, "
     "because a leak from one website lets attackers try the same login elsewhere. A password manager can store them "
     "all, and turning on two-factor authentication adds a second layer of protection.",
     (("What do security experts now recommend?", "long passphrases"),
      ("Why should every account have a different password?",
       "a leak from one website lets attackers try the same login elsewhere"),
      ("What can store all your passwords?", "A password manager"),
      ("What adds a second layer of protection?", "two-factor authentication"))),
    ("Apollo 11",
     "Apollo 11 launched from Florida on 16 July 1969 with Neil Armstrong, Buzz Aldrin and Michael Collins on board. "
     "Four days later, Armstrong and Aldrin landed the lunar module Eagle in the Sea of Tranquility, while Collins "
     "stayed in orbit in the command module Columbia. The two astronauts spent about two and a half hours outside, "
     "collecting 21.5 kilograms of rock and soil. The crew returned safely to Earth on 24 July.",
     (("When did Apollo 11 launch?", "16 July 1969"),
      ("What was the lunar module called?", "Eagle"),
      ("Who stayed in orbit?", "Collins"),
      ("How much rock and soil was collected?", "21.5 kilograms"))),
    ("Tea",
     "Tea is made from the leaves of Camellia sinensis, an evergreen shrub first cultivated in China. Green tea is "
     "dried soon after picking, while black tea is left to oxidise, which darkens the leaves and deepens the flavour. "
     "Tea reached Europe in the seventeenth century through Dutch and Portuguese traders. Today India, China and Kenya "
     "are among the largest producers.",
     (("What plant is tea made from?", "Camellia sinensis"),
      ("Where was the tea plant first cultivated?", "China"),
      ("What happens to black tea leaves after picking?", "left to oxidise"),
      ("When did tea reach Europe?", "in the seventeenth century"))),
    ("Train strike",
     "Rail services across the region were cancelled on Tuesday as drivers began a forty-eight-hour strike over pay. "
     "The union says wages have fallen behind inflation for three years, while the operator says its offer of a five "
     "per cent rise is fair. Commuters were advised to work from home where possible. Talks are due to resume on "
     "Thursday at the offices of an independent mediator.",
     (("How long is the strike?", "forty-eight-hour"),
      ("What pay rise did the operator offer?", "five per cent"),
      ("What were commuters advised to do?", "work from home where possible"),
      ("When are talks due to resume?", "on Thursday"))),
    ("Blood",
     "The human heart pumps about five litres of blood every minute when the body is at rest. Red blood cells carry "
     "oxygen bound to a protein called haemoglobin, while white blood cells defend the body against infection. "
     "Platelets help the blood to clot after an injury. An adult has roughly five litres of blood in total, and red "
     "cells live for about 120 days before they are recycled in the spleen and liver.",
     (("What protein carries oxygen in red blood cells?", "haemoglobin"),
      ("What do white blood cells do?", "defend the body against infection"),
      ("What helps the blood to clot?", "Platelets"),
      ("How long do red cells live?", "about 120 days"))),
    ("Chess",
     "Chess is played on a board of sixty-four squares by two players, one with the white pieces and one with the "
     "black. White always moves first. The aim is to checkmate the opposing king, which means attacking it so that it "
     "has no legal escape. A game can also end in a draw, for example by stalemate or when the same position appears "
     "three times. The modern rules were settled in southern Europe around 1475.",
     (("How many squares does a chess board have?", "sixty-four"),
      ("Which side moves first?", "White"),
      ("What is the aim of the game?", "to checkmate the opposing king"),
      ("When were the modern rules settled?", "around 1475"))),
    ("Heat pump",
     "A heat pump moves heat rather than making it. In winter it extracts warmth from the outside air or the ground "
     "and releases it inside the house; in summer the cycle can run in reverse to cool the rooms. Because it moves "
     "three or four units of heat for each unit of electricity it uses, it costs less to run than an electric heater. "
     "It works best in well insulated homes with underfloor heating or large radiators.",
     (("What does a heat pump move?", "heat"),
      ("Where does a heat pump extract warmth from in winter?", "the outside air or the ground"),
      ("How many units of heat does it move per unit of electricity?", "three or four"),
      ("Where does a heat pump work best?", "in well insulated homes"))),
    ("Great Barrier Reef",
     "The Great Barrier Reef stretches for more than 2,300 kilometres off the coast of Queensland in Australia. It is "
     "made of thousands of individual reefs built by tiny animals called coral polyps. The reef is home to about 1,500 "
     "species of fish and six of the world's seven species of sea turtle. Rising sea temperatures have caused several "
     "mass bleaching events since 1998.",
     (("How long is the Great Barrier Reef?", "more than 2,300 kilometres"),
      ("Off which Australian state is the reef?", "Queensland"),
      ("What builds the reef?", "tiny animals called coral polyps"),
      ("What has caused mass bleaching events?", "Rising sea temperatures"))),
    ("Job advert",
     "We are looking for a part-time bookkeeper to join our small architecture practice in the town centre. The role "
     "is twenty hours a week, and the hours are flexible. You will manage invoices, run the monthly payroll and "
     "prepare figures for our accountant at the end of each quarter. Experience with cloud accounting software is "
     "essential. Please send a CV and a short covering letter by 30 September.",
     (("What job is being advertised?", "a part-time bookkeeper"),
      ("How many hours a week is the role?", "twenty hours"),
      ("What experience is essential?", "Experience with cloud accounting software"),
      ("What is the closing date for applications?", "30 September"))),
    ("Penicillin",
     "In 1928, Alexander Fleming noticed that a mould growing on one of his culture plates had killed the bacteria "
     "around it. He named the active substance penicillin. It was not until the early 1940s that Howard Florey and "
     "Ernst Chain found a way to purify it in large amounts, just in time to treat wounded soldiers in the Second World "
     "War. The three men shared the Nobel Prize in 1945.",
     (("Who noticed the mould killing bacteria?", "Alexander Fleming"),
      ("What did Fleming name the active substance?", "penicillin"),
      ("Who found a way to purify penicillin?", "Howard Florey and Ernst Chain"),
      ("When did the three men share the Nobel Prize?", "1945"))),
    ("Cycling commute",
     "Cycling to work has grown quickly in the city since protected bike lanes were built along the main avenues. "
     "Counters on the river bridges recorded 14,000 trips on an average weekday last spring, twice as many as five "
     "years earlier. Most riders say safety was the reason they started. The council now plans to add secure bike "
     "parking at every railway station.",
     (("What was built along the main avenues?", "protected bike lanes"),
      ("How many trips were recorded on an average weekday?", "14,000"),
      ("What reason do most riders give for starting?", "safety"),
      ("What does the council plan to add at stations?", "secure bike parking"))),
    ("Saturn",
     "Saturn is the sixth planet from the Sun and the second largest in the Solar System, after Jupiter. It is a gas "
     "giant made mostly of hydrogen and helium, and its average density is lower than that of water. Its rings are "
     "made of countless pieces of ice and rock, some as small as grains of sand and others as large as houses. Saturn "
     "has more than a hundred known moons, the largest of which is Titan.",
     (("Which planet is larger than Saturn?", "Jupiter"),
      ("What is Saturn mostly made of?", "hydrogen and helium"),
      ("What are the rings made of?", "countless pieces of ice and rock"),
      ("What is Saturn's largest moon?", "Titan"))),
    ("Tenancy",
     "The tenant must pay the rent on the first day of each month by bank transfer. A deposit equal to one month's "
     "rent is held in a government-backed protection scheme and returned within ten days of the end of the tenancy, "
     "less the cost of any damage beyond normal wear and tear. The landlord must give at least twenty-four hours' "
     "written notice before entering the property, except in an emergency.",
     (("When must the rent be paid?", "on the first day of each month"),
      ("Where is the deposit held?", "in a government-backed protection scheme"),
      ("How soon is the deposit returned?", "within ten days of the end of the tenancy"),
      ("How much notice must the landlord give before entering?", "at least twenty-four hours'"))),
    ("Octopus",
     "The octopus has eight arms lined with suckers that can both touch and taste. It has three hearts and blue blood, "
     "because its blood uses copper rather than iron to carry oxygen. Octopuses are known for their intelligence: in "
     "aquariums they have learned to open jars and escape from their tanks. Most species live for only one or two "
     "years.",
     (("How many hearts does an octopus have?", "three"),
      ("Why is octopus blood blue?", "its blood uses copper rather than iron to carry oxygen"),
      ("What have octopuses learned to open in aquariums?", "jars"),
      ("How long do most species live?", "only one or two years"))),
    ("Software release",
     "Version 3.2 of the editor adds a built-in terminal and support for editing files over SSH. Start-up time has "
     "been cut by forty per cent on large projects thanks to a new file indexer. The plugin system now runs each "
     "plugin in its own process, so a crash no longer takes the whole editor down. Support for the old settings "
     "format will be removed in version 4.0.",
     (("Which version adds a built-in terminal?", "Version 3.2"),
      ("By how much was start-up time cut?", "forty per cent"),
      ("Why does a plugin crash no longer take the editor down?", "runs each plugin in its own process"),
      ("When will support for the old settings format be removed?", "in version 4.0"))),
    ("Silk Road",
     "The Silk Road was a network of trade routes that linked China with the Mediterranean for more than fifteen "
     "hundred years. Merchants rarely travelled the whole way; goods passed from trader to trader through cities such "
     "as Samarkand and Kashgar. Besides silk, caravans carried spices, glass, paper and horses. Ideas travelled too, "
     "and Buddhism spread into China along the same roads.",
     (("What did the Silk Road link?", "China with the Mediterranean"),
      ("Name a city goods passed through.", "Samarkand"),
      ("Besides silk, what did caravans carry?", "spices, glass, paper and horses"),
      ("Which religion spread into China along the roads?", "Buddhism"))),
    ("Sleep",
     "Most adults need between seven and nine hours of sleep a night. During deep sleep the body repairs tissue, "
     "while dreaming mostly happens in rapid eye movement sleep, which returns about every ninety minutes. Light from "
     "screens in the evening can delay the release of melatonin, the hormone that makes us feel sleepy. Keeping the "
     "same bedtime every day is one of the simplest ways to sleep better.",
     (("How much sleep do most adults need?", "between seven and nine hours"),
      ("When does dreaming mostly happen?", "in rapid eye movement sleep"),
      ("Which hormone makes us feel sleepy?", "melatonin"),
      ("What is one of the simplest ways to sleep better?", "Keeping the same bedtime every day"))),
    ("Football final",
     "The home side won the cup final 2-1 after extra time in front of 74,000 spectators. The visitors took the lead "
     "through a header just before half-time, but the captain equalised with a free kick in the seventy-eighth minute. "
     "The winning goal came from a nineteen-year-old substitute, who had been on the pitch for only six minutes. It "
     "was the club's first major trophy in twenty-two years.",
     (("What was the final score?", "2-1"),
      ("How many spectators watched the final?", "74,000"),
      ("Who equalised?", "the captain"),
      ("How long had the substitute been on the pitch?", "only six minutes"))),
    ("Glass",
     "Glass is made by melting sand, soda ash and limestone together at about 1,500 degrees Celsius. As the mixture "
     "cools, it becomes rigid without forming crystals, which is why glass is transparent. Most window glass today is "
     "made by the float process, in which molten glass is poured onto a bath of molten tin to give a perfectly flat "
     "surface. Glass can be recycled again and again without losing quality.",
     (("What are the ingredients of glass?", "sand, soda ash and limestone"),
      ("At what temperature are they melted?", "about 1,500 degrees Celsius"),
      ("What is molten glass poured onto in the float process?", "a bath of molten tin"),
      ("How often can glass be recycled?", "again and again"))),
    ("Elephants",
     "African elephants are the largest land animals, and adult males can weigh more than six tonnes. They live in "
     "family groups led by the oldest female, called the matriarch, who remembers where to find water in dry years. "
     "Elephants use their trunks to breathe, smell, drink and pick up objects as small as a peanut. Their long "
     "pregnancy lasts about twenty-two months.",
     (("How much can adult male African elephants weigh?", "more than six tonnes"),
      ("Who leads an elephant family group?", "the oldest female"),
      ("What does the matriarch remember?", "where to find water in dry years"),
      ("How long does an elephant pregnancy last?", "about twenty-two months"))),
    ("Bank notice",
     "From 1 June, the monthly fee for the everyday account will rise from three pounds to four pounds fifty. "
     "Customers who pay in at least 1,000 pounds a month will not be charged the fee. Interest on savings balances "
     "above 5,000 pounds will increase to 3.1 per cent. If you do not agree with these changes, you may close your "
     "account at no cost before the new terms start.",
     (("When do the changes take effect?", "From 1 June"),
      ("What will the new monthly fee be?", "four pounds fifty"),
      ("Who will not be charged the fee?", "Customers who pay in at least 1,000 pounds a month"),
      ("What will the savings interest rate rise to?", "3.1 per cent"))),
    ("Lighthouses",
     "Before satellite navigation, lighthouses were the main aid that kept ships off dangerous rocks at night. Each "
     "light flashes in its own pattern, so sailors can tell which lighthouse they are looking at. The Fresnel lens, "
     "invented in France in 1822, made the beams visible for more than thirty kilometres. Almost all lighthouses are "
     "now automatic, and the last keepers left their towers decades ago.",
     (("What did lighthouses keep ships away from?", "dangerous rocks"),
      ("How can sailors tell lighthouses apart?", "Each light flashes in its own pattern"),
      ("When was the Fresnel lens invented?", "1822"),
      ("How far could the beams be seen with the Fresnel lens?", "more than thirty kilometres"))),
    ("Recycling guide",
     "Rinse plastic bottles and tins before you put them in the blue bin, and flatten cardboard boxes so they take up "
     "less space. Glass jars go in the separate green box, but broken drinking glasses and mirrors belong in general "
     "waste. Batteries must never go in any bin, because they can start fires in the collection lorries; take them to "
     "a supermarket drop-off point instead. Collections take place every other Wednesday.",
     (("Which bin do rinsed plastic bottles go in?", "the blue bin"),
      ("Where do glass jars go?", "in the separate green box"),
      ("Why must batteries never go in any bin?", "they can start fires in the collection lorries"),
      ("When do collections take place?", "every other Wednesday"))),
)

#: Short sentences of many kinds (conversation, headlines, instructions, opinions), for plain-text tasks.
SENTENCES: tuple[str, ...] = (
    "Could you send me the report before lunch?",
    "The meeting has been moved to Friday afternoon.",
    "Prices rose faster than expected in October.",
    "I really enjoyed the film, but the ending felt rushed.",
    "Turn off the power before you open the case.",
    "Thanks!",
    "The delivery arrived two days late and the box was damaged.",
    "Scientists have found water ice in craters near the Moon's south pole.",
    "Our team is hiring engineers who enjoy hard problems.",
    "Where is the nearest pharmacy?",
    "He left the keys on the kitchen table.",
    "The hotel was clean, quiet and close to the station.",
    "Heavy rain is expected across the north tonight.",
    "Please restart the application to apply the update.",
    "She has played the violin since she was six.",
    "The customer service was terrible and nobody answered my emails.",
    "A man is playing a guitar on the street corner.",
    "Two children are building a sandcastle on the beach.",
    "The museum is free on the first Sunday of every month.",
    "Stocks fell sharply after the announcement.",
    "Add the onions and cook until they are soft.",
    "What time does the last bus leave?",
    "This is the best coffee I have had in years.",
    "The bridge will be closed for repairs all weekend.",
    "Our flight was cancelled because of fog.",
    "The new policy applies to all employees from next year.",
    "A dog is running through a field of tall grass.",
    "I am not sure this is the right approach.",
    "The committee approved the budget by seven votes to two.",
    "Ok",
)
